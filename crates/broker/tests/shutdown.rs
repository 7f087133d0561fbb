//! Graceful shutdown: live sessions get ERROR `server shutting down`, new ones are refused, and
//! `shutdown()` waits (boundedly) for sessions to end.

use std::time::Duration;

use stompbox_broker::{Broker, CloseReason, Config};
use stompbox_codec::Command;
use stompbox_test_support::{TestClient, frames};

#[tokio::test]
async fn live_sessions_are_told_and_closed_new_ones_refused() {
    let broker = Broker::new();
    let mut a = TestClient::connect(&broker).await;
    a.subscribe("0", "/topic/a").await;
    let b = TestClient::connect(&broker).await;
    let mut pending = TestClient::start(&broker); // not yet connected
    tokio::time::timeout(Duration::from_secs(5), broker.shutdown())
        .await
        .expect("shutdown finishes once sessions end");
    assert!(broker.is_shutting_down());
    for client in [&mut a, &mut pending] {
        client.expect_error("server shutting down").await;
    }
    assert_eq!(a.expect_closed().await, CloseReason::Shutdown);
    assert_eq!(pending.expect_closed().await, CloseReason::Shutdown);
    let (frames, reason) = b.drain_until_closed().await;
    assert_eq!(reason, CloseReason::Shutdown);
    assert_eq!(
        frames.last().unwrap().header("message"),
        Some("server shutting down")
    );
    assert_eq!(broker.stats().connections, 0);

    let mut late = TestClient::start(&broker);
    late.expect_error("server shutting down").await;
    assert_eq!(late.expect_closed().await, CloseReason::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_at_most_the_grace_period() {
    let config = Config {
        shutdown_grace: Duration::from_secs(3),
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    // A client whose transport is full: its session cannot flush the shutdown ERROR.
    let mut stuck = TestClient::start_with_capacity(&broker, 1);
    stuck.send_frame(frames::connect()).await;
    stuck.expect_frame(Command::Connected).await;
    stuck.subscribe("0", "/topic/s").await;
    let mut publisher = TestClient::connect(&broker).await;
    for _ in 0..4 {
        publisher
            .send_frame(frames::send("/topic/s", "z".repeat(100 * 1024)))
            .await;
    }
    publisher
        .send_frame(frames::subscribe("p", "/topic/p").with_header("receipt", "r"))
        .await;
    publisher.expect_receipt("r").await;
    let started = tokio::time::Instant::now();
    broker.shutdown().await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    // The stuck session gave up flushing when the grace period ended.
    assert_eq!(stuck.close_reason().await, CloseReason::Shutdown);
    publisher.expect_error("server shutting down").await;
    assert_eq!(publisher.expect_closed().await, CloseReason::Shutdown);
}
