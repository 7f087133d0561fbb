//! The push webhook against a real local HTTP receiver: each message kept in an offline inbox is
//! POSTed as JSON with the configured `Authorization`; 503s are tried again with backoff; a
//! receiver that is down makes the message count as failed, and the message still waits in the
//! inbox for the user; `/metrics` counts all of it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::http::request;
use common::{TestServer, WsClient, frames, within};
use prometheus_parse::{Scrape, Value};
use stompbox_broker::Payload;
use stompbox_server::ServerConfig;
use tokio::sync::mpsc;

/// What the receiver was sent: (Authorization header, JSON body).
type Received = (Option<String>, serde_json::Value);

/// An HTTP receiver on 127.0.0.1:0 that answers 503 to its first `fail_first` requests, then
/// 204; returns its address and what it was sent.
async fn receiver(fail_first: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let hook = move |headers: HeaderMap, body: axum::body::Bytes| {
        let (tx, seen) = (tx.clone(), seen.clone());
        async move {
            if seen.fetch_add(1, Relaxed) < fail_first {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            let auth = (headers.get("authorization")).map(|v| v.to_str().unwrap().to_owned());
            let json = serde_json::from_slice(&body).expect("a JSON document");
            let _ = tx.send((auth, json));
            StatusCode::NO_CONTENT
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(hook));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, rx)
}

fn with_push(url: String, max_attempts: u32) -> impl FnOnce(&mut ServerConfig) {
    move |c| {
        c.broker.inbox.destinations = vec!["/queue/notifications".into()];
        c.push.url = url;
        c.push.authorization = "Bearer hook-token".into();
        c.push.max_attempts = max_attempts;
        c.push.retry_backoff = Duration::from_millis(10);
        c.push.max_retry_backoff = Duration::from_millis(40);
    }
}

async fn scrape(server: &TestServer) -> Scrape {
    let response = request(server.ws_addr, "GET", "/metrics", &[], b"").await;
    let text = response.rest().await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(scrape: &Scrape, metric: &str) -> f64 {
    let sample = (scrape.samples.iter())
        .find(|s| s.metric == metric)
        .unwrap_or_else(|| panic!("no {metric}"));
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{metric} is not a plain value"),
    }
}

/// Scrapes until `metric` reaches `want`: the sender thread gets there in its own time.
async fn until(server: &TestServer, metric: &str, want: f64) -> Scrape {
    within(metric, async {
        loop {
            let scrape = scrape(server).await;
            if value(&scrape, metric) >= want {
                return scrape;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn kept_messages_are_posted_as_json_and_tried_again_after_a_503() {
    let (addr, mut received) = receiver(2).await;
    let server = TestServer::start(with_push(format!("http://{addr}/hook"), 5)).await;
    let liked = Payload::text("someone liked your post").header("x-kind", "like");
    assert_eq!(
        server
            .broker
            .send_to_user("bob", "/queue/notifications", liked)
            .unwrap(),
        0
    );
    let binary = Payload::bytes(vec![0xff, 0x00, 0x01]);
    server
        .broker
        .send_to_user("bob", "/queue/notifications", binary)
        .unwrap();
    // Not an inbox destination: neither kept nor pushed.
    server
        .broker
        .send_to_user("bob", "/queue/typing", "...")
        .unwrap();

    let (auth, first) = within("the first POST", received.recv()).await.unwrap();
    assert_eq!(auth.as_deref(), Some("Bearer hook-token"));
    assert_eq!(first["user"], "bob");
    assert_eq!(first["destination"], "/user/queue/notifications");
    assert_eq!(first["body"], "someone liked your post");
    assert_eq!(first["headers"]["x-kind"], "like");
    let id = first["message_id"].as_str().unwrap().to_owned();
    let (_, second) = within("the second POST", received.recv()).await.unwrap();
    assert_eq!(second["body_base64"], "/wAB");
    assert!(second.get("body").is_none());

    let scrape = until(&server, "stompbox_push_sent_total", 2.0).await;
    assert_eq!(value(&scrape, "stompbox_push_retries_total"), 2.0);
    assert_eq!(value(&scrape, "stompbox_push_failed_total"), 0.0);
    assert_eq!(value(&scrape, "stompbox_push_pending"), 0.0);

    // Pushed, and still waiting in the inbox for bob.
    let connect = frames::connect().with_header("login", "bob");
    let mut bob = WsClient::open(&server.ws_url).await;
    bob.handshake(connect).await;
    bob.send_frame(frames::subscribe("n", "/user/queue/notifications"))
        .await;
    let m = bob.expect_message().await;
    assert_eq!(m.header("message-id"), Some(id.as_str()));
    assert_eq!(bob.expect_message().await.body.as_ref(), [0xff, 0x00, 0x01]);
}

#[tokio::test]
async fn a_receiver_that_is_down_makes_the_push_fail_and_the_inbox_keeps_the_message() {
    // A port nothing listens on any more.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let server = TestServer::start(with_push(format!("http://{closed}/hook"), 3)).await;
    server
        .broker
        .send_to_user("bob", "/queue/notifications", "while down")
        .unwrap();
    let scrape = until(&server, "stompbox_push_failed_total", 1.0).await;
    assert_eq!(value(&scrape, "stompbox_push_retries_total"), 2.0);
    assert_eq!(value(&scrape, "stompbox_push_sent_total"), 0.0);

    let mut bob = WsClient::open(&server.ws_url).await;
    bob.handshake(frames::connect().with_header("login", "bob"))
        .await;
    bob.send_frame(frames::subscribe("n", "/user/queue/notifications"))
        .await;
    assert_eq!(bob.expect_message().await.body.as_ref(), b"while down");
}

#[tokio::test]
async fn a_bad_push_url_is_a_configuration_error() {
    let mut config = ServerConfig::default();
    config.push.url = "ftp://example".into();
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("push.url"), "{error}");
}
