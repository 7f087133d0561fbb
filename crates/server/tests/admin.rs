//! The admin API on its own listener: every endpoint, refusals without the token, and the
//! OpenAPI document describing exactly the routes served.

mod common;

use std::net::SocketAddr;

use common::http::request;
use common::{TcpClient, TestServer, frames};
use serde_json::Value;

const TOKEN: &str = "an-admin-token-of-some-length";

async fn admin() -> (TestServer, SocketAddr) {
    let server = TestServer::start(|c| {
        c.admin.enabled = true;
        c.admin.listen = "127.0.0.1:0".parse().unwrap();
        c.admin.token = TOKEN.into();
        c.broker.queues.max_deliveries = 1;
    })
    .await;
    let addr = server.admin_addr.expect("the admin listener");
    (server, addr)
}

/// (status, JSON body) of a request with the token.
async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    let response = request(addr, method, path, &headers, body.as_bytes()).await;
    let status = response.status;
    let text = response.rest().await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn every_endpoint_needs_the_token() {
    let (_server, addr) = admin().await;
    for (method, path) in [
        ("GET", "/api/overview"),
        ("GET", "/api/queues"),
        ("GET", "/api/openapi.json"),
        ("DELETE", "/api/queues/jobs/messages"),
        ("POST", "/api/publish"),
        ("GET", "/nowhere"),
    ] {
        for auth in [
            None,
            Some("Bearer wrong-token-but-long-enough"),
            Some(TOKEN),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let response = request(addr, method, path, &headers, b"").await;
            assert_eq!(response.status, 401, "{method} {path} with {auth:?}");
            assert!(
                response.head.contains("www-authenticate: bearer"),
                "{}",
                response.head
            );
        }
    }
}

#[tokio::test]
async fn overview_queues_purge_redrive_and_publish() {
    let (server, addr) = admin().await;
    let (status, overview) = call(addr, "GET", "/api/overview", "").await;
    assert_eq!(status, 200);
    assert_eq!(overview["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(overview["shutting_down"], false);

    // Publish three jobs; a consumer rejects one into the dead-letter queue.
    for i in 0..3 {
        let body = format!(
            r#"{{"destination": "/queue/jobs", "body": "job {i}", "headers": {{"x-n": "{i}"}}}}"#
        );
        let (status, published) = call(addr, "POST", "/api/publish", &body).await;
        assert_eq!((status, &published["deliveries"]), (202, &Value::from(0)));
    }
    let mut c = TcpClient::connect(server.tcp_addr).await;
    // No receipt: what waits is dispatched ahead of one.
    c.send_frame(
        frames::subscribe_ack("c", "/queue/jobs", "client-individual")
            .with_header("prefetch-count", "1"),
    )
    .await;
    let first = c.expect_message().await;
    assert_eq!(first.header("x-n"), Some("0"));
    // One delivery at most (max_deliveries = 1): the NACK dead-letters it; the next job,
    // handed to the session at once, is dead-lettered too when the session ends unacknowledged
    // (its MESSAGE and the DISCONNECT's RECEIPT come in either order).
    c.send_frame(frames::nack(first.header("ack").unwrap()))
        .await;
    c.send_frame(frames::disconnect("bye")).await;
    let mut seen = Vec::new();
    while !seen.contains(&stompbox_codec::Command::Receipt) {
        seen.push(c.recv().await.command);
    }

    let (status, queues) = call(addr, "GET", "/api/queues", "").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = (queues.as_array().unwrap().iter())
        .map(|q| q["destination"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/queue/dlq.jobs", "/queue/jobs"]);
    let (status, jobs) = call(addr, "GET", "/api/queues/jobs", "").await;
    assert_eq!(
        (status, &jobs["depth"], &jobs["enqueued"]),
        (200, &1.into(), &3.into())
    );
    let (_, dead) = call(addr, "GET", "/api/queues/dlq.jobs", "").await;
    assert_eq!(dead["depth"], 2);
    let (status, missing) = call(addr, "GET", "/api/queues/nothing", "").await;
    assert_eq!(status, 404);
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("/queue/nothing")
    );

    // Redrive: the dead letters go back to the back of /queue/jobs.
    let (status, moved) = call(addr, "POST", "/api/queues/jobs/redrive", "").await;
    assert_eq!((status, &moved["messages"]), (200, &2.into()));
    let depth = |q: &str| server.broker.queue_stats(q).unwrap().depth;
    assert_eq!((depth("/queue/jobs"), depth("/queue/dlq.jobs")), (3, 0));
    let (status, _) = call(
        addr,
        "POST",
        "/api/queues/jobs/redrive",
        r#"{"from": "/topic/x"}"#,
    )
    .await;
    assert_eq!(status, 400);

    // In order: what waited, then the dead letters as they were, without their marks.
    let mut c = TcpClient::connect(server.tcp_addr).await;
    c.send_frame(frames::subscribe("c", "/queue/jobs")).await;
    for n in ["2", "0", "1"] {
        let m = c.expect_message().await;
        assert_eq!(m.header("x-n"), Some(n));
        assert_eq!(m.header("x-original-destination"), None);
    }
    c.send_frame(frames::disconnect("bye")).await;
    c.expect_receipt("bye").await;

    // Purge drops what waits.
    for _ in 0..3 {
        call(
            addr,
            "POST",
            "/api/publish",
            r#"{"destination": "/queue/jobs"}"#,
        )
        .await;
    }
    let (status, purged) = call(addr, "DELETE", "/api/queues/jobs/messages", "").await;
    assert_eq!((status, &purged["messages"]), (200, &3.into()));
    assert_eq!(depth("/queue/jobs"), 0);
    let (status, _) = call(addr, "DELETE", "/api/queues/nothing/messages", "").await;
    assert_eq!(status, 404);

    // Publishing where server code may not send is a 400 that says why.
    let (status, refused) =
        call(addr, "POST", "/api/publish", r#"{"destination": "/app/x"}"#).await;
    assert_eq!(status, 400, "{refused}");
    let (status, _) = call(addr, "POST", "/api/publish", "not json").await;
    assert!((400..500).contains(&status), "{status}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_routes() {
    let (_server, addr) = admin().await;
    let (status, doc) = call(addr, "GET", "/api/openapi.json", "").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/overview",
            "/api/publish",
            "/api/queues",
            "/api/queues/{name}",
            "/api/queues/{name}/messages",
            "/api/queues/{name}/redrive",
        ]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Queue"]["properties"]["depth"].is_object());
}

#[tokio::test]
async fn an_enabled_admin_api_needs_a_long_token() {
    let mut config = stompbox_server::ServerConfig::default();
    config.admin.enabled = true;
    config.admin.token = "short".into();
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("admin.token"), "{error}");
}
