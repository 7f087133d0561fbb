//! Heart-beats with paused time: negotiation, server EOLs, and the read-side timeout.

use std::time::Duration;

use stompbox_broker::{Broker, CloseReason, Config, HeartbeatConfig};
use stompbox_codec::Frame;
use stompbox_test_support::{TestClient, frames};
use tokio::time::Instant;

fn connect(heart_beat: &str) -> Frame {
    let mut f = frames::connect();
    f.headers.set("heart-beat", heart_beat);
    f
}

fn broker(send_ms: u64, receive_ms: u64) -> Broker {
    let config = Config {
        heartbeat: HeartbeatConfig {
            send: Duration::from_millis(send_ms),
            receive: Duration::from_millis(receive_ms),
            min: Duration::from_millis(500),
            max: Duration::from_millis(20_000),
            grace: 2.0,
        },
        ..Config::default()
    };
    Broker::builder().config(config).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn negotiation_table() {
    // (server send, server receive), client header → CONNECTED heart-beat; min 500 ms, max 20 s.
    // The client's intervals are honoured; the server's values only turn a direction on or off.
    let table = [
        ((10_000, 10_000), "0,0", "0,0"),
        ((10_000, 10_000), "5000,5000", "5000,5000"),
        ((10_000, 10_000), "1000,1000", "1000,1000"),
        ((10_000, 10_000), "1250,750", "750,1250"),
        ((10_000, 10_000), "20000,30000", "20000,20000"),
        ((10_000, 10_000), "30000,20000", "20000,30000"),
        ((10_000, 10_000), "100,0", "0,500"),
        ((10_000, 10_000), "0,100", "500,0"),
        ((1_000, 1_000), "100,100", "500,500"),
        ((0, 0), "1000,1000", "0,0"),
        ((0, 2_000), "1000,1000", "0,1000"),
    ];
    for ((send, receive), client, expected) in table {
        let broker = broker(send, receive);
        let (_c, connected) = TestClient::connect_with(&broker, connect(client)).await;
        assert_eq!(
            connected.header("heart-beat"),
            Some(expected),
            "server {send},{receive} client {client}"
        );
    }
    // STOMP 1.0 has no heart-beats, whatever the header says.
    let broker = broker(1_000, 1_000);
    let connect_1_0 = frames::connect_1_0().with_header("heart-beat", "1000,1000");
    let (_c, connected) = TestClient::connect_with(&broker, connect_1_0).await;
    assert_eq!(connected.header("heart-beat"), Some("0,0"));
}

#[tokio::test(start_paused = true)]
async fn server_sends_an_eol_when_it_wrote_nothing_for_the_interval() {
    let broker = broker(1_000, 0);
    let (mut c, _) = TestClient::connect_with(&broker, connect("0,1000")).await;
    let start = Instant::now();
    c.expect_heartbeat().await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    c.expect_heartbeat().await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    // Any write resets the interval: a receipt at 2.5 s moves the next beat to 3.5 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.send_frame(frames::subscribe("0", "/topic/a").with_header("receipt", "r"))
        .await;
    c.expect_receipt("r").await;
    c.expect_heartbeat().await;
    assert_eq!(start.elapsed(), Duration::from_millis(3_500));
}

#[tokio::test(start_paused = true)]
async fn no_server_beats_when_the_client_wants_none() {
    let broker = broker(1_000, 0);
    let (mut c, _) = TestClient::connect_with(&broker, connect("0,0")).await;
    c.set_wait(Duration::from_secs(60));
    let start = Instant::now();
    match tokio::time::timeout(Duration::from_secs(30), c.next_item()).await {
        Err(_) => assert_eq!(start.elapsed(), Duration::from_secs(30)),
        Ok(item) => panic!("expected silence, got {item:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_after_interval_times_grace() {
    let broker = broker(0, 1_000);
    let (mut c, _) = TestClient::connect_with(&broker, connect("1000,0")).await;
    let start = Instant::now();
    let error = c.expect_error("heart-beat timeout").await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let body = std::str::from_utf8(&error.body).unwrap();
    assert!(
        body.contains("2000 ms") && body.contains("1000 ms"),
        "{body}"
    );
    assert_eq!(c.expect_closed().await, CloseReason::HeartbeatTimeout);
}

#[tokio::test(start_paused = true)]
async fn eols_pings_and_frames_all_count_as_liveness() {
    let broker = broker(0, 1_000);
    let (mut c, _) = TestClient::connect_with(&broker, connect("1000,0")).await;
    let start = Instant::now();
    for i in 0..9 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        match i % 3 {
            0 => c.send_bytes(&b"\n"[..]).await,
            1 => c.ping().await,
            _ => c.send_frame(frames::send("/topic/beat", "x")).await,
        }
    }
    // 13.5 s in, alive; then silence closes it 2 s after the last byte.
    c.expect_error("heart-beat timeout").await;
    assert_eq!(start.elapsed(), Duration::from_millis(15_500));
}

#[tokio::test(start_paused = true)]
async fn no_read_timeout_when_the_client_sends_no_beats() {
    let broker = broker(0, 1_000);
    let (mut c, _) = TestClient::connect_with(&broker, connect("0,0")).await;
    c.expect_no_frame(Duration::from_secs(60)).await;
    c.send_frame(frames::subscribe("0", "/topic/a").with_header("receipt", "still-here"))
        .await;
    c.expect_receipt("still-here").await;
}

/// With the default configuration, a client asking for beats every second (stomp.js
/// `heartbeatIncoming/Outgoing = 1000`, stomp.py `heartbeats=(1000, 1000)`) gets them every
/// second, and is closed 2 s after it falls silent.
#[tokio::test(start_paused = true)]
async fn a_client_gets_the_intervals_it_asks_for_by_default() {
    let broker = Broker::new();
    let (mut c, connected) = TestClient::connect_with(&broker, connect("1000,1000")).await;
    assert_eq!(connected.header("heart-beat"), Some("1000,1000"));
    let start = Instant::now();
    for second in 1..=3 {
        c.expect_heartbeat().await;
        assert_eq!(start.elapsed(), Duration::from_secs(second));
        c.send_bytes(&b"\n"[..]).await;
    }
    // Silent from 3 s on: closed at 5 s, with the server's beat at 4 s before the ERROR.
    c.expect_heartbeat().await;
    c.expect_error("heart-beat timeout").await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

/// A slow `/app` handler must not get a healthy client closed for silence: with its handler
/// queue full, the session stops decoding but goes on reading, so heart-beats still count.
#[tokio::test(start_paused = true)]
async fn heart_beats_count_while_the_handler_queue_is_full() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let broker = Broker::builder()
        .state(gate)
        .on_send(
            "/slow",
            |stompbox_broker::State(mut gate): stompbox_broker::State<
                tokio::sync::watch::Receiver<bool>,
            >| async move {
                gate.wait_for(|open| *open).await.unwrap();
            },
        )
        .build()
        .unwrap();
    let (mut c, _) = TestClient::connect_with(&broker, connect("1000,0")).await;
    // More calls than the queue holds (64), then only beats for ten seconds.
    for i in 0..100 {
        c.send_frame(frames::send("/app/slow", i.to_string())).await;
    }
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        c.send_bytes(&b"\n"[..]).await;
    }
    c.expect_no_frame(Duration::from_millis(900)).await;
    open.send(true).unwrap();
    c.send_with_receipt(frames::send("/topic/t", "x"), "alive")
        .await;
}

/// Beyond `heartbeat.max` (here 20 s) the server still beats every `max`, and below `min`
/// (500 ms) every `min`; a client that offers beats below `min` is held to `min`.
#[tokio::test(start_paused = true)]
async fn intervals_outside_min_and_max_are_bounded() {
    let broker = broker(10_000, 10_000);
    let (mut c, connected) = TestClient::connect_with(&broker, connect("0,60000")).await;
    assert_eq!(connected.header("heart-beat"), Some("20000,0"));
    c.set_wait(Duration::from_secs(30));
    let start = Instant::now();
    c.expect_heartbeat().await;
    assert_eq!(start.elapsed(), Duration::from_secs(20));

    let (mut c, connected) = TestClient::connect_with(&broker, connect("100,100")).await;
    assert_eq!(connected.header("heart-beat"), Some("500,500"));
    let start = Instant::now();
    c.expect_heartbeat().await;
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    // Silent since CONNECTED: closed at 2 × 500 ms.
    c.expect_error("heart-beat timeout").await;
    assert_eq!(start.elapsed(), Duration::from_millis(1_000));
}
