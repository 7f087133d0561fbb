//! STOMP over SockJS through the server's HTTP edge: a session over XHR polling, the Origin
//! allow-list and `max_connections` applied at a session's first request, and `[sockjs]`
//! options reaching the endpoint. The protocol itself is tested in `crates/sockjs`; real
//! clients in `interop/stompjs/test/sockjs*.test.js`.

mod common;

use std::net::SocketAddr;

use common::{TestServer, connect_frame, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request on its own connection; the status and body (every response here has a length).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    origin: Option<&str>,
    body: &str,
) -> (u16, String) {
    within("an HTTP response", async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{origin}\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    })
    .await
}

#[tokio::test]
async fn a_stomp_session_over_xhr_polling() {
    let server = TestServer::start(|_| {}).await;
    let addr = server.ws_addr;
    assert_eq!(
        http(addr, "POST", "/sockjs/1/a/xhr", None, "").await,
        (200, "o\n".into())
    );
    let connect = String::from_utf8(connect_frame()).unwrap();
    let payload = serde_json::to_string(&[connect]).unwrap();
    assert_eq!(
        http(addr, "POST", "/sockjs/1/a/xhr_send", None, &payload)
            .await
            .0,
        204
    );
    let (status, body) = http(addr, "POST", "/sockjs/1/a/xhr", None, "").await;
    assert_eq!(status, 200);
    let frame = body.strip_prefix("a").unwrap().trim_end();
    let messages: Vec<String> = serde_json::from_str(frame).unwrap();
    assert!(messages[0].starts_with("CONNECTED\n"), "{messages:?}");
    assert!(messages[0].contains("version:1.2"), "{messages:?}");

    let disconnect = serde_json::to_string(&["DISCONNECT\nreceipt:bye\n\n\0"]).unwrap();
    assert_eq!(
        http(addr, "POST", "/sockjs/1/a/xhr_send", None, &disconnect)
            .await
            .0,
        204
    );
    let (_, body) = http(addr, "POST", "/sockjs/1/a/xhr", None, "").await;
    assert!(body.starts_with("a[\"RECEIPT\\nreceipt-id:bye"), "{body}");
    // The broker ended the session after DISCONNECT: its close frame follows.
    let (_, body) = http(addr, "POST", "/sockjs/1/a/xhr", None, "").await;
    assert_eq!(body, "c[1000,\"disconnect\"]\n");
}

#[tokio::test]
async fn the_origin_allow_list_applies_to_a_sessions_first_request() {
    let server = TestServer::start(|config| {
        config.websocket.allowed_origins = vec!["http://good.test".into()];
    })
    .await;
    let addr = server.ws_addr;
    let (status, body) = http(
        addr,
        "POST",
        "/sockjs/1/a/xhr",
        Some("http://evil.test"),
        "",
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("origin not allowed"), "{body}");
    let good = http(
        addr,
        "POST",
        "/sockjs/1/b/xhr",
        Some("http://good.test"),
        "",
    )
    .await;
    assert_eq!(good, (200, "o\n".into()));
}

#[tokio::test]
async fn polling_sessions_count_against_max_connections() {
    let server = TestServer::start(|config| config.broker.max_connections = 2).await;
    let addr = server.ws_addr;
    // The request's connection and the session: two.
    assert_eq!(
        http(addr, "POST", "/sockjs/1/a/xhr", None, "").await,
        (200, "o\n".into())
    );
    // Session a, this request's connection, and the new session: one too many.
    let (status, body) = http(addr, "POST", "/sockjs/1/b/xhr", None, "").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("connections"), "{body}");
}

#[tokio::test]
async fn sockjs_options_and_prefixes_come_from_the_config() {
    let server = TestServer::start(|config| {
        config.sockjs.prefix = stompbox_server::Prefixes::Many(vec!["/a".into(), "/b/c".into()]);
        config.sockjs.websocket = false;
        config.sockjs.cookie_needed = true;
    })
    .await;
    let addr = server.ws_addr;
    for prefix in ["/a", "/b/c"] {
        let (status, body) = http(addr, "GET", &format!("{prefix}/info"), None, "").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("\"websocket\":false,\"cookie_needed\":true"),
            "{body}"
        );
    }
    assert_eq!(http(addr, "GET", "/sockjs/info", None, "").await.0, 404);

    let disabled = TestServer::start(|config| config.sockjs.enabled = false).await;
    assert_eq!(
        http(disabled.ws_addr, "GET", "/sockjs/info", None, "")
            .await
            .0,
        404
    );
}
