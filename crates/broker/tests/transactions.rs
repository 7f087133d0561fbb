//! BEGIN / COMMIT / ABORT: SEND, ACK and NACK inside a transaction take effect at COMMIT, are
//! discarded at ABORT and when the session ends; transaction ids are checked.

use std::time::Duration;

use stompbox_broker::{Broker, Config, TransactionConfig};
use stompbox_codec::{Command, Frame};
use stompbox_test_support::{TestClient, frames};

const QUIET: Duration = Duration::from_millis(50);

fn body(m: &Frame) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

#[tokio::test]
async fn sends_take_effect_at_commit_and_its_receipt_follows_every_effect() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("t", "/topic/tx").await;
    let mut p = TestClient::connect(&broker).await;
    p.send_with_receipt(frames::begin("tx1"), "b").await;
    for i in 0..3 {
        let send = frames::send("/queue/tx", format!("q{i}")).with_header("transaction", "tx1");
        p.send_with_receipt(send, &format!("s{i}")).await;
    }
    p.send_with_receipt(
        frames::send("/topic/tx", "t").with_header("transaction", "tx1"),
        "st",
    )
    .await;
    // Buffered: nothing routed yet.
    assert_eq!(broker.queue_stats("/queue/tx"), None);
    c.expect_no_frame(QUIET).await;
    p.send_with_receipt(frames::commit("tx1"), "c").await;
    // The RECEIPT means every frame of the transaction took effect.
    assert_eq!(broker.queue_stats("/queue/tx").unwrap().depth, 3);
    let m = c.expect_message().await;
    assert_eq!(body(&m), "t");
    assert_eq!(m.header("transaction"), None, "not forwarded");
    let mut q = TestClient::connect(&broker).await;
    q.send_frame(frames::subscribe("0", "/queue/tx")).await;
    for i in 0..3 {
        assert_eq!(body(&q.expect_message().await), format!("q{i}"));
    }
    // A committed transaction is closed.
    p.send_frame(frames::commit("tx1")).await;
    p.expect_error("unknown transaction id").await;
}

#[tokio::test]
async fn sends_are_discarded_at_abort() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("0", "/queue/ab").await;
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::begin("tx")).await;
    p.send_frame(frames::send("/queue/ab", "no").with_header("transaction", "tx"))
        .await;
    p.send_with_receipt(frames::abort("tx"), "a").await;
    p.send_with_receipt(frames::send("/queue/ab", "yes"), "s")
        .await;
    assert_eq!(body(&c.expect_message().await), "yes");
    c.expect_no_frame(QUIET).await;
    assert_eq!(broker.queue_stats("/queue/ab").unwrap().enqueued, 1);
    // The id is free again.
    p.send_with_receipt(frames::begin("tx"), "b").await;
}

#[tokio::test]
async fn acks_and_nacks_take_effect_at_commit_and_not_at_abort() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe_with(frames::subscribe_ack("0", "/queue/ta", "client-individual"))
        .await;
    let mut p = TestClient::connect(&broker).await;
    for i in 0..3 {
        p.send_frame(frames::send("/queue/ta", format!("m{i}")))
            .await;
    }
    let mut got = Vec::with_capacity(3);
    for _ in 0..3 {
        got.push(c.expect_message().await);
    }
    let ack = |i: usize| got[i].header("ack").unwrap().to_owned();

    c.send_frame(frames::begin("t1")).await;
    c.send_frame(frames::ack(&ack(0)).with_header("transaction", "t1"))
        .await;
    c.send_with_receipt(
        frames::nack(&ack(1)).with_header("transaction", "t1"),
        "held",
    )
    .await;
    let stats = broker.queue_stats("/queue/ta").unwrap();
    assert_eq!(
        (stats.acked, stats.in_flight),
        (0, 3),
        "nothing settled yet"
    );
    c.send_frame(frames::commit("t1").with_header("receipt", "c1"))
        .await;
    // The NACKed one comes back (to the only consumer), then the commit's RECEIPT.
    let again = c.expect_message().await;
    assert_eq!(
        (body(&again).as_str(), again.header("redelivered")),
        ("m1", Some("true"))
    );
    c.expect_receipt("c1").await;
    let stats = broker.queue_stats("/queue/ta").unwrap();
    assert_eq!((stats.acked, stats.redelivered), (1, 1));

    // An ACK in an aborted transaction leaves the message unacknowledged.
    c.send_frame(frames::begin("t2")).await;
    c.send_frame(frames::ack(&ack(2)).with_header("transaction", "t2"))
        .await;
    c.send_with_receipt(frames::abort("t2"), "a2").await;
    assert_eq!(broker.queue_stats("/queue/ta").unwrap().acked, 1);
    c.send_with_receipt(frames::ack(&ack(2)), "direct").await;
    let again_id = again.header("ack").unwrap().to_owned();
    c.send_with_receipt(frames::ack(&again_id), "last").await;
    let stats = broker.queue_stats("/queue/ta").unwrap();
    assert_eq!((stats.acked, stats.in_flight, stats.depth), (3, 0, 0));
}

#[tokio::test]
async fn open_transactions_are_aborted_when_the_session_ends() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe_with(frames::subscribe_ack("0", "/queue/end", "client"))
        .await;
    let mut p = TestClient::connect(&broker).await;
    p.send_with_receipt(frames::send("/queue/end", "work"), "w")
        .await;
    let m = c.expect_message().await;
    c.send_frame(frames::begin("t")).await;
    c.send_frame(frames::ack(m.header("ack").unwrap()).with_header("transaction", "t"))
        .await;
    p.send_frame(frames::begin("t")).await;
    p.send_frame(frames::send("/queue/end", "never").with_header("transaction", "t"))
        .await;
    p.disconnect().await;
    c.disconnect().await;
    // The ACK never happened: the message is back; the SEND never happened either.
    let stats = broker.queue_stats("/queue/end").unwrap();
    assert_eq!((stats.depth, stats.acked, stats.enqueued), (1, 0, 1));
}

#[tokio::test]
async fn unknown_and_duplicate_transaction_ids_are_errors() {
    let broker = Broker::new();
    let cases: Vec<(Vec<Frame>, &str)> = vec![
        (vec![frames::commit("nope")], "unknown transaction id"),
        (vec![frames::abort("nope")], "unknown transaction id"),
        (
            vec![frames::send("/queue/x", "x").with_header("transaction", "nope")],
            "unknown transaction id",
        ),
        (
            vec![frames::ack("1").with_header("transaction", "nope")],
            "unknown transaction id",
        ),
        (
            vec![frames::begin("t"), frames::begin("t")],
            "duplicate transaction id",
        ),
        (
            vec![Frame::new(Command::Begin)],
            "missing transaction header",
        ),
        (
            vec![Frame::new(Command::Commit)],
            "missing transaction header",
        ),
        (
            vec![
                frames::begin("t"),
                frames::send("/user/alice/queue/x", "x").with_header("transaction", "t"),
            ],
            "access refused: /user/alice/queue/x",
        ),
    ];
    for (frames, message) in cases {
        let mut c = TestClient::connect(&broker).await;
        let n = frames.len();
        for (i, frame) in frames.into_iter().enumerate() {
            let frame = frame.with_header("receipt", format!("r{i}"));
            c.send_frame(frame).await;
            if i + 1 < n {
                c.expect_receipt(&format!("r{i}")).await;
            }
        }
        let e = c.expect_error(message).await;
        assert_eq!(e.header("receipt-id"), Some(format!("r{}", n - 1).as_str()));
    }
}

#[tokio::test]
async fn transactions_are_bounded() {
    let config = Config {
        transactions: TransactionConfig {
            max_open: 2,
            max_frames: 2,
            ..TransactionConfig::default()
        },
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::begin("a")).await;
    c.send_frame(frames::begin("b")).await;
    c.send_frame(frames::begin("c")).await;
    c.expect_error("too many transactions (max 2)").await;
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::begin("a")).await;
    for _ in 0..3 {
        c.send_frame(frames::send("/queue/b", "x").with_header("transaction", "a"))
            .await;
    }
    c.expect_error("transaction too large").await;
}
