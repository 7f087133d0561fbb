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
            "/api/connections",
            "/api/connections/{id}",
            "/api/destinations",
            "/api/history",
            "/api/overview",
            "/api/publish",
            "/api/queues",
            "/api/queues/{name}",
            "/api/queues/{name}/messages",
            "/api/queues/{name}/redrive",
            "/api/subscriptions",
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

#[tokio::test]
async fn connections_are_listed_and_one_is_closed_by_an_operator() {
    let (server, addr) = admin().await;
    let mut alice = TcpClient::open(server.tcp_addr).await;
    alice
        .handshake(frames::connect().with_header("login", "alice"))
        .await;
    alice.subscribe("a", "/topic/news").await;
    alice.subscribe("b", "/queue/jobs").await;
    let mut other = TcpClient::connect(server.tcp_addr).await;

    let (status, list) = call(addr, "GET", "/api/connections", "").await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let entry = (list.iter())
        .find(|c| c["user"] == "alice")
        .expect("alice is listed");
    assert_eq!(entry["transport"], "tcp");
    assert_eq!(entry["version"], "1.2");
    assert_eq!(entry["subscriptions"], 2);
    assert!(entry["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    let id = entry["id"].as_u64().unwrap();

    // Their subscriptions, one by one and by destination.
    other.subscribe("c", "/topic/news").await;
    let (status, subs) = call(addr, "GET", "/api/subscriptions", "").await;
    assert_eq!(status, 200);
    let subs: Vec<(&str, &str, &str, Option<&str>)> = (subs.as_array().unwrap().iter())
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap();
            (
                text("destination"),
                text("id"),
                text("ack"),
                s["user"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        subs,
        [
            ("/queue/jobs", "b", "auto", Some("alice")),
            ("/topic/news", "a", "auto", Some("alice")),
            ("/topic/news", "c", "auto", None),
        ]
    );
    let (status, used) = call(addr, "GET", "/api/destinations", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        used,
        serde_json::json!([
            {"destination": "/queue/jobs", "subscriptions": 1, "sessions": 1},
            {"destination": "/topic/news", "subscriptions": 2, "sessions": 2},
        ])
    );
    (other.send_with_receipt(frames::unsubscribe("c"), "unsubscribed")).await;

    let path = format!("/api/connections/{id}?reason=maintenance%20window");
    let (status, _) = call(addr, "DELETE", &path, "").await;
    assert_eq!(status, 202);
    let error = alice.recv().await;
    assert_eq!(error.command, stompbox_codec::Command::Error, "{error:?}");
    assert_eq!(error.header("message"), Some("closed by an operator"));
    let body = String::from_utf8(error.body.to_vec()).unwrap();
    assert!(body.contains("maintenance window"), "{body}");
    assert!(alice.try_recv().await.is_none(), "closed after the ERROR");
    // Gone from the list once its session ended; the other one untouched.
    common::within("alice to leave the list", async {
        loop {
            let (_, list) = call(addr, "GET", "/api/connections", "").await;
            if list.as_array().unwrap().len() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let (_, subs) = call(addr, "GET", "/api/subscriptions", "").await;
    assert_eq!(
        subs,
        serde_json::json!([]),
        "alice gone, other unsubscribed"
    );
    let (status, _) = call(addr, "DELETE", &format!("/api/connections/{id}"), "").await;
    assert_eq!(status, 404);
    let (status, bad) = call(addr, "DELETE", "/api/connections/not-a-number", "").await;
    assert_eq!(status, 400, "{bad}");
    let closed = server.broker.stats().closed;
    assert!(closed.contains(&("closed_by_operator", 1)), "{closed:?}");
}

#[tokio::test]
async fn the_dashboard_is_served_without_the_token_and_charts_the_history() {
    let (server, addr) = admin().await;
    let page = request(addr, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(
        page.head.contains("content-type: text/html"),
        "{}",
        page.head
    );
    assert!(
        page.head.contains("frame-ancestors 'none'"),
        "{}",
        page.head
    );
    let html = page.rest().await;
    assert!(html.contains("/dashboard/dashboard.js"), "{html}");
    for (asset, kind) in [
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
        ("/dashboard/uPlot.iife.min.js", "text/javascript"),
        ("/dashboard/uPlot.min.css", "text/css"),
    ] {
        let response = request(addr, "GET", asset, &[], b"").await;
        assert_eq!(response.status, 200, "{asset}");
        assert!(response.head.contains(kind), "{asset}: {}", response.head);
        assert!(!response.rest().await.is_empty(), "{asset}");
    }
    // The data is not: the history needs the token like every API route.
    let refused = request(addr, "GET", "/api/history", &[], b"").await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        request(addr, "GET", "/dashboard/x.js", &[], b"")
            .await
            .status,
        401
    );

    // The sampler takes its first sample at once, then one every two seconds.
    let mut client = TcpClient::connect(server.tcp_addr).await;
    client.subscribe("s", "/queue/waiting").await;
    let history = common::within("a first sample", async {
        loop {
            let (status, history) = call(addr, "GET", "/api/history", "").await;
            assert_eq!(status, 200);
            if !history["samples"].as_array().unwrap().is_empty() {
                return history;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(history["interval_seconds"], 2);
    let first = &history["samples"][0];
    assert!(
        first["at_ms"].as_u64().unwrap() > 1_700_000_000_000,
        "{first}"
    );
    assert_eq!(
        first["received_per_second"], 0.0,
        "no rate before a second sample"
    );
    for key in ["sessions", "queued", "delivered_per_second"] {
        assert!(first[key].is_number(), "{key}: {first}");
    }
    // Messages sent now show as a rate in a later sample.
    let publish = r#"{"destination": "/queue/waiting", "body": "x"}"#;
    for _ in 0..5 {
        assert_eq!(call(addr, "POST", "/api/publish", publish).await.0, 202);
    }
    common::within("a sample with a rate", async {
        loop {
            let (_, history) = call(addr, "GET", "/api/history", "").await;
            let samples = history["samples"].as_array().unwrap();
            if samples
                .iter()
                .any(|s| s["received_per_second"].as_f64() > Some(0.0))
            {
                let last = samples.last().unwrap();
                assert!(last["sessions"].as_u64() >= Some(1), "{last}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_queue_without_consumers_is_deleted() {
    let (server, addr) = admin().await;
    let mut producer = TcpClient::connect(server.tcp_addr).await;
    for i in 0..3 {
        let send = frames::send("/queue/old.jobs", format!("job {i}"));
        producer.send_with_receipt(send, &format!("r{i}")).await;
    }
    let mut consumer = TcpClient::connect(server.tcp_addr).await;
    consumer.subscribe("s", "/queue/busy").await;

    let (status, refused) = call(addr, "DELETE", "/api/queues/busy", "").await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("consumers"),
        "{refused}"
    );
    let (status, deleted) = call(addr, "DELETE", "/api/queues/old.jobs", "").await;
    assert_eq!((status, deleted), (200, serde_json::json!({"messages": 3})));
    let (status, _) = call(addr, "GET", "/api/queues/old.jobs", "").await;
    assert_eq!(status, 404);
    let (status, _) = call(addr, "DELETE", "/api/queues/old.jobs", "").await;
    assert_eq!(status, 404);
    let (status, _) = call(addr, "DELETE", "/api/queues/busy", "").await;
    assert_eq!(status, 409, "still consumed");
}
