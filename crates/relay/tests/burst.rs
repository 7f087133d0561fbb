//! A burst through an outage: node A reaches RabbitMQ through a TCP proxy this test controls.
//! Halfway through 100,000 messages from one publisher, the proxy cuts A's connection and
//! refuses it for 5 s. The publisher is held (the relay's buffer fills) instead of refused,
//! A reconnects, publishes again what was not confirmed, and node B delivers every message
//! once, in order.

mod common;

use std::time::Duration;

use common::*;
use stompbox_test_support::cut_proxy::CutProxy;
use stompbox_test_support::frames;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_an_outage_is_delivered_once_in_order() {
    let prefix = prefix("burst");
    let proxy = CutProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let mut through_proxy = config(&prefix, "a");
    through_proxy.urls = vec![format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port)];
    let a = node_from(through_proxy).await;
    // The subscriber reads the flush after the outage as fast as this test reads: room for it
    // (the default outbox would end it as a slow consumer, which is not what is tested here).
    let mut roomy = stompbox_broker::Config::default();
    roomy.outbox.max_frames = 1_000_000;
    roomy.outbox.max_bytes = 512 * 1024 * 1024;
    let b = node_with(
        &prefix,
        "b",
        stompbox_broker::Broker::builder().config(roomy),
    )
    .await;
    let mut subscriber = client(&b.broker).await;
    subscriber.subscribe("s", "/topic/burst").await;
    synced(&[&a, &b]).await;

    const N: usize = 100_000;
    let receiving = tokio::spawn(async move {
        for i in 0..N {
            let message = subscriber.expect_message().await;
            assert_eq!(body(&message), i.to_string(), "once each, in order");
        }
        assert_eq!(body(&subscriber.expect_message().await), "end");
        subscriber.expect_no_frame(QUIET).await;
        subscriber
    });
    let mut publisher = client(&a.broker).await;
    for i in 0..N {
        if i == N / 2 {
            let recovered = watch_recovery(&a.relay);
            proxy.block();
            let unblock = async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                proxy.unblock();
            };
            // The publisher goes on sending while the relay is away; it is held, not refused.
            let sending = async {
                for j in i..i + 20_000 {
                    let send = frames::send("/topic/burst", j.to_string());
                    publisher.send_frame(send).await;
                }
            };
            tokio::join!(unblock, sending);
            let (down, up) = recovered.await.unwrap();
            println!("relay a down for {:?}", up - down);
            continue;
        }
        if (N / 2..N / 2 + 20_000).contains(&i) {
            continue;
        }
        let send = frames::send("/topic/burst", i.to_string());
        publisher.send_frame(send).await;
    }
    publisher
        .send_with_receipt(frames::send("/topic/burst", "end"), "end")
        .await;
    let subscriber = tokio::time::timeout(Duration::from_secs(120), receiving)
        .await
        .expect("every message in time")
        .expect("once each, in order");
    assert_eq!(a.relay.refused(), 0, "the publisher was never refused");
    subscriber.disconnect().await;
    publisher.disconnect().await;
    a.relay.stop().await;
    b.relay.stop().await;
    remove_exchanges(&prefix).await;
}
