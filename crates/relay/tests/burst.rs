//! A burst through an outage: node A reaches RabbitMQ through a TCP proxy this test controls.
//! Halfway through 100,000 messages from one publisher, the proxy cuts A's connection and
//! refuses it for 5 s. The publisher is held (the relay's buffer fills) instead of refused,
//! A reconnects, publishes again what was not confirmed, and node B delivers every message
//! once, in order.

mod common;

use std::time::Duration;

use common::*;
use stompbox_test_support::cut_proxy::CutProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_an_outage_is_delivered_once_in_order() {
    let prefix = prefix("burst");
    let proxy = CutProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let mut through_proxy = config(&prefix, "a");
    through_proxy.urls = vec![format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port)];
    let a = node_from(through_proxy).await;
    let b = node_with(&prefix, "b", roomy()).await;
    let outage = async {
        let recovered = watch_recovery(&a.relay);
        proxy.block();
        tokio::time::sleep(Duration::from_secs(5)).await;
        proxy.unblock();
        let (down, up) = recovered.await.unwrap();
        println!("relay a down for {:?}", up - down);
    };
    burst_through(&a, &b, outage).await;
    a.relay.stop().await;
    b.relay.stop().await;
    remove_exchanges(&prefix).await;
}
