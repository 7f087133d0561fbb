//! The protocol over real sockets, after `sockjs-protocol.py`'s behaviours: the static URLs,
//! each transport, close frames, heartbeats, timeouts, `xhr_send` errors and limits, CORS, the
//! cookie, and the JSON escaping.

mod common;

use std::time::Duration;

use common::{get, post, request, serve, session};
use futures::{SinkExt, StreamExt};
use stompbox_sockjs::Config;
use tokio_tungstenite::tungstenite::Message;

fn config() -> Config {
    Config {
        streaming_bytes_limit: 4096,
        ..Config::default()
    }
}

#[tokio::test]
async fn greeting_info_and_unknown_paths() {
    let addr = serve(config()).await;
    for path in ["/echo", "/echo/"] {
        let r = get(addr, path).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
        assert_eq!(r.body().await, "Welcome to SockJS!\n");
    }
    for path in [
        "/echo/a",
        "/echo/a.html",
        "/echo//",
        "/echo/a/a",
        "/echo/a/a/",
        "/echo/a/b/nope",
    ] {
        assert_eq!(get(addr, path).await.status, 404, "{path}");
    }

    let r = request(
        addr,
        "GET",
        "/echo/info",
        &[("Origin", "http://a.test")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://a.test")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("cache-control"),
        Some("no-store, no-cache, no-transform, must-revalidate, max-age=0")
    );
    assert_eq!(r.header("set-cookie"), None);
    let info: serde_json::Value = serde_json::from_str(&r.body().await).unwrap();
    assert_eq!(info["websocket"], true);
    assert_eq!(info["cookie_needed"], false);
    assert_eq!(info["origins"], serde_json::json!(["*:*"]));
    assert!(info["entropy"].is_u64());

    let r = get(addr, "/echo/info").await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);

    let off: serde_json::Value = serde_json::from_str(
        &get(addr, "/disabled_websocket_echo/info")
            .await
            .body()
            .await,
    )
    .unwrap();
    assert_eq!(off["websocket"], false);
    let cookie = get(addr, "/cookie_needed_echo/info").await;
    assert_eq!(cookie.header("set-cookie"), None);
    let cookie: serde_json::Value = serde_json::from_str(&cookie.body().await).unwrap();
    assert_eq!(cookie["cookie_needed"], true);
}

#[tokio::test]
async fn preflights_are_cached_for_a_year() {
    let addr = serve(config()).await;
    let headers = [
        ("Origin", "null"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "a, b"),
    ];
    for (path, methods) in [
        ("/echo/info", "OPTIONS, GET"),
        ("/echo/a/b/xhr", "OPTIONS, POST"),
        ("/echo/a/b/xhr_send", "OPTIONS, POST"),
        ("/echo/a/b/xhr_streaming", "OPTIONS, POST"),
    ] {
        let r = request(addr, "OPTIONS", path, &headers, "").await;
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=31536000"));
        assert!(r.header("expires").is_some());
        assert_eq!(r.header("access-control-max-age"), Some("31536000"));
        assert_eq!(r.header("access-control-allow-methods"), Some(methods));
        assert_eq!(r.header("access-control-allow-headers"), Some("a, b"));
        assert_eq!(r.header("access-control-allow-origin"), Some("null"));
        assert_eq!(r.body().await, "");
    }
}

#[tokio::test]
async fn the_iframe_page_is_cacheable() {
    let addr = serve(config()).await;
    let r = get(addr, "/echo/iframe-0.1.2abc-dirty.2144.html?t=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=31536000"));
    assert!(r.header("expires").is_some());
    assert_eq!(r.header("set-cookie"), None);
    let etag = r.header("etag").unwrap().to_owned();
    let body = r.body().await;
    assert!(body.contains("SockJS.bootstrap_iframe();"));
    assert!(body.contains(&Config::default().client_url));
    let again = request(
        addr,
        "GET",
        "/echo/iframe.html",
        &[("If-None-Match", &etag)],
        "",
    )
    .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.header("content-type"), None);
    for bad in [
        "/echo/iframe.htm",
        "/echo/IFRAME.HTML",
        "/echo/iframe-/.html",
    ] {
        assert_eq!(get(addr, bad).await.status, 404, "{bad}");
    }
}

#[tokio::test]
async fn xhr_polling_session() {
    let addr = serve(config()).await;
    let url = session("echo");
    let r = request(
        addr,
        "POST",
        &format!("{url}/xhr"),
        &[("Origin", "http://a.test")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://a.test")
    );
    assert_eq!(r.body().await, "o\n");

    let r = post(addr, &format!("{url}/xhr_send"), r#"["x","y"]"#).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "a[\"x\",\"y\"]\n"
    );

    // The server id is ignored; a second receiver while one is attached is told off, and the
    // session goes on (the stream is attached once its response has begun).
    let id = url.rsplit('/').next().unwrap();
    let mut stream = post(addr, &format!("/echo/999/{id}/xhr_streaming"), "").await;
    stream.chunk().await.unwrap();
    let busy = post(addr, &format!("{url}/xhr"), "").await.body().await;
    assert_eq!(busy, "c[2010,\"Another connection still open\"]\n");
    assert_eq!(
        post(addr, &format!("{url}/xhr_send"), r#"["z"]"#)
            .await
            .status,
        204
    );
    assert_eq!(stream.chunk().await.unwrap(), "a[\"z\"]\n");

    assert_eq!(
        post(addr, "/echo/000/nobody/xhr_send", r#"["x"]"#)
            .await
            .status,
        404
    );
    assert_eq!(get(addr, &format!("{url}/xhr")).await.status, 405);
    assert_eq!(get(addr, "/echo/a./b/xhr").await.status, 404);
}

#[tokio::test]
async fn xhr_send_errors_and_limits() {
    let addr = serve(Config {
        max_send_size: 64,
        ..config()
    })
    .await;
    let url = session("echo");
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
    let r = post(addr, &format!("{url}/xhr_send"), "").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body().await, "Payload expected.");
    let r = post(addr, &format!("{url}/xhr_send"), "[\"x").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body().await, "Broken JSON encoding.");
    let r = post(addr, &format!("{url}/xhr_send"), "[1, 2]").await;
    assert_eq!(r.status, 500);
    let big = format!("[\"{}\"]", "x".repeat(100));
    assert_eq!(
        post(addr, &format!("{url}/xhr_send"), &big).await.status,
        413
    );
    let r = request(addr, "PUT", &format!("{url}/xhr_send"), &[], "[]").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("OPTIONS, POST"));
    // The session survived all that.
    assert_eq!(
        post(addr, &format!("{url}/xhr_send"), "[\"ok\"]")
            .await
            .status,
        204
    );
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "a[\"ok\"]\n"
    );
}

#[tokio::test]
async fn close_frames_are_kept_for_later_requests() {
    let addr = serve(config()).await;
    let url = session("close");
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
    for _ in 0..2 {
        let r = post(addr, &format!("{url}/xhr"), "").await;
        assert_eq!(r.body().await, "c[3000,\"Go away!\"]\n");
    }
    let url = session("close");
    let mut r = post(addr, &format!("{url}/xhr_streaming"), "").await;
    assert_eq!(r.chunk().await.unwrap(), format!("{}\n", "h".repeat(2048)));
    assert_eq!(r.chunk().await.unwrap(), "o\n");
    assert_eq!(r.chunk().await.unwrap(), "c[3000,\"Go away!\"]\n");
    assert_eq!(r.chunk().await, None);
}

#[tokio::test]
async fn streaming_transports_frame_and_end_at_the_limit() {
    let addr = serve(config()).await;
    // xhr_streaming
    let url = session("echo");
    let mut r = post(addr, &format!("{url}/xhr_streaming"), "").await;
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    r.chunk().await.unwrap();
    assert_eq!(r.chunk().await.unwrap(), "o\n");
    let message = format!("\"{}\"", "x".repeat(128));
    for _ in 0..31 {
        let sent = post(addr, &format!("{url}/xhr_send"), &format!("[{message}]")).await;
        assert_eq!(sent.status, 204);
        assert_eq!(r.chunk().await.unwrap(), format!("a[{message}]\n"));
    }
    assert_eq!(r.chunk().await, None, "ended past 4 KiB");
    // A second stream while one is open is told off.
    let url = session("echo");
    let mut first = post(addr, &format!("{url}/xhr_streaming"), "").await;
    first.chunk().await.unwrap();
    assert_eq!(first.chunk().await.unwrap(), "o\n");
    let second = post(addr, &format!("{url}/xhr_streaming"), "")
        .await
        .body()
        .await;
    assert!(second.ends_with("c[2010,\"Another connection still open\"]\n"));

    // eventsource
    let url = session("echo");
    let mut r = get(addr, &format!("{url}/eventsource")).await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.chunk().await.unwrap(), "\r\n");
    assert_eq!(r.chunk().await.unwrap(), "data: o\r\n\r\n");
    post(addr, &format!("{url}/xhr_send"), r#"["  \u0000\n\r "]"#).await;
    assert_eq!(
        r.chunk().await.unwrap(),
        "data: a[\"  \\u0000\\n\\r \"]\r\n\r\n"
    );

    // htmlfile
    let url = session("echo");
    let mut r = get(addr, &format!("{url}/htmlfile?c=%63allback")).await;
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    let prelude = r.chunk().await.unwrap();
    assert!(prelude.len() > 1024 && prelude.contains("var c = parent.callback;"));
    assert_eq!(
        r.chunk().await.unwrap(),
        "<script>\np(\"o\");\n</script>\r\n"
    );
    post(addr, &format!("{url}/xhr_send"), r#"["x"]"#).await;
    assert_eq!(
        r.chunk().await.unwrap(),
        "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
    );
    for (query, error) in [
        ("", "\"callback\" parameter required"),
        ("?c=%20", "invalid \"callback\" parameter"),
        ("?c=abc%28", "invalid \"callback\" parameter"),
    ] {
        let r = get(addr, &format!("/echo/a/a/htmlfile{query}")).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.body().await, error);
    }
}

#[tokio::test]
async fn jsonp_polling_and_jsonp_send() {
    let addr = serve(config()).await;
    let url = session("echo");
    let r = get(addr, &format!("{url}/jsonp?c=cb")).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert_eq!(r.body().await, "/**/cb(\"o\");\r\n");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = request(
        addr,
        "POST",
        &format!("{url}/jsonp_send"),
        &form,
        "d=%5B%22x%22%5D",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body().await, "ok");
    let r = request(
        addr,
        "POST",
        &format!("{url}/jsonp_send"),
        &[],
        "[\"%61bc\"]",
    )
    .await;
    assert_eq!(r.body().await, "ok");
    for empty in ["", "d=", "p=p"] {
        let r = request(addr, "POST", &format!("{url}/jsonp_send"), &form, empty).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.body().await, "Payload expected.");
    }
    let r = get(addr, &format!("{url}/jsonp?c=cb")).await;
    assert_eq!(
        r.body().await,
        "/**/cb(\"a[\\\"x\\\",\\\"%61bc\\\"]\");\r\n"
    );
    assert_eq!(get(addr, "/echo/a/a/jsonp").await.status, 500);
}

#[tokio::test]
async fn cookie_when_needed() {
    let addr = serve(config()).await;
    let url = session("cookie_needed_echo");
    let r = post(addr, &format!("{url}/xhr"), "").await;
    assert_eq!(r.header("set-cookie"), Some("JSESSIONID=dummy; path=/"));
    let url = session("cookie_needed_echo");
    let r = request(
        addr,
        "POST",
        &format!("{url}/xhr"),
        &[("Cookie", "a=b; JSESSIONID=abc")],
        "",
    )
    .await;
    assert_eq!(r.header("set-cookie"), Some("JSESSIONID=abc; path=/"));
    let url = session("echo");
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "")
            .await
            .header("set-cookie"),
        None
    );
}

#[tokio::test]
async fn the_server_escapes_what_browsers_mangle() {
    let addr = serve(config()).await;
    let url = session("echo");
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
    let raw = "\u{200c}\u{2028}\u{2060}\u{fff0}\u{ffff}é";
    let payload = serde_json::to_string(&[raw]).unwrap();
    assert_eq!(
        post(addr, &format!("{url}/xhr_send"), &payload)
            .await
            .status,
        204
    );
    let body = post(addr, &format!("{url}/xhr"), "").await.body().await;
    assert_eq!(body, "a[\"\\u200c\\u2028\\u2060\\ufff0\\uffffé\"]\n");
}

#[tokio::test]
async fn heartbeats_and_session_timeouts() {
    let addr = serve(Config {
        heartbeat_interval: Duration::from_millis(50),
        disconnect_delay: Duration::from_millis(100),
        ..config()
    })
    .await;
    let url = session("echo");
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
    // An idle poll is answered with a heartbeat.
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "h\n"
    );
    // Unattended past disconnect_delay, the session is gone: a send is 404, a poll opens anew.
    let gone = async {
        loop {
            if post(addr, &format!("{url}/xhr_send"), "[\"x\"]")
                .await
                .status
                == 404
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(common::WAIT, gone).await.unwrap();
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
}

#[tokio::test]
async fn websocket_transports() {
    let addr = serve(config()).await;
    let url = format!("ws://{addr}{}/websocket", session("echo"));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("o"));
    ws.send(Message::text("")).await.unwrap();
    ws.send(Message::text("[]")).await.unwrap();
    ws.send(Message::text("[\"a\",\"b\"]")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("a[\"a\",\"b\"]")
    );
    ws.send(Message::text("[\"a")).await.unwrap();
    let closed = ws.next().await.unwrap().unwrap();
    assert!(
        matches!(closed, Message::Close(Some(ref f)) if u16::from(f.code) == 1003),
        "{closed:?}"
    );

    let url = format!("ws://{addr}{}/websocket", session("close"));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("o"));
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("c[3000,\"Go away!\"]")
    );
    let closed = ws.next().await.unwrap().unwrap();
    assert!(
        matches!(closed, Message::Close(Some(ref f)) if f.reason == "Go away!"),
        "{closed:?}"
    );

    // Raw: messages as they are.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo/websocket"))
        .await
        .unwrap();
    ws.send(Message::text("Hello world!\u{ffff}"))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("Hello world!\u{ffff}")
    );

    // Refusals.
    assert_eq!(get(addr, "/echo/0/0/websocket").await.status, 400);
    let r = request(
        addr,
        "GET",
        "/echo/0/0/websocket",
        &[("Upgrade", "WebSocket"), ("Connection", "close")],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(addr, "/echo/0/0/websocket", "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("content-type"), None);
    assert_eq!(
        get(addr, "/disabled_websocket_echo/0/0/websocket")
            .await
            .status,
        404
    );
}

/// A TCP stream whose reads are counted, to see how much crossed the wire.
type Counted = tokio_util::io::InspectReader<tokio::net::TcpStream, CountReads>;
type CountReads = Box<dyn FnMut(&[u8]) + Send + Sync>;

/// Opens `path` on `addr` offering permessage-deflate as browsers do; the socket, and the
/// count of bytes it has read off the wire.
async fn open_offering_deflate(
    addr: std::net::SocketAddr,
    path: &str,
) -> (
    stompbox_websocket::WebSocket<Counted>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let read = std::sync::Arc::<std::sync::atomic::AtomicUsize>::default();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let count = std::sync::Arc::clone(&read);
    let inspect: CountReads = Box::new(move |bytes: &[u8]| {
        count.fetch_add(bytes.len(), std::sync::atomic::Ordering::Relaxed);
    });
    let io = tokio_util::io::InspectReader::new(tcp, inspect);
    let request = format!("ws://{addr}{path}").into_client_request().unwrap();
    let offer = stompbox_websocket::DeflateConfig::default();
    let (ws, _) = tokio::time::timeout(
        common::WAIT,
        stompbox_websocket::WebSocket::client(io, request, Default::default(), Some(&offer)),
    )
    .await
    .unwrap()
    .unwrap();
    (ws, read)
}

async fn next(ws: &mut stompbox_websocket::WebSocket<Counted>) -> Message {
    let message = tokio::time::timeout(common::WAIT, ws.next()).await;
    message.unwrap().unwrap().unwrap()
}

#[tokio::test]
async fn websocket_transports_compress_when_configured_and_offered() {
    let compressed = serve(Config {
        deflate: Some(stompbox_websocket::DeflateConfig::default()),
        ..config()
    })
    .await;
    let plain = serve(config()).await;
    let body = "{\"type\":\"match-found\",\"player\":42}".repeat(60);

    // SockJS frames over WebSocket: the echo comes back inflated, and fewer bytes than its
    // length crossed the wire.
    let (mut ws, read) =
        open_offering_deflate(compressed, &format!("{}/websocket", session("echo"))).await;
    assert!(
        ws.deflate().is_some(),
        "the server agreed to permessage-deflate"
    );
    assert_eq!(next(&mut ws).await, Message::text("o"));
    let frame = serde_json::to_string(&[&body]).unwrap();
    ws.send(Message::text(frame.clone())).await.unwrap();
    let before = read.load(std::sync::atomic::Ordering::Relaxed);
    let echoed = next(&mut ws).await;
    assert_eq!(echoed, Message::text(format!("a{frame}")));
    let wire = read.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        wire < frame.len() / 4,
        "{wire} bytes on the wire for {}",
        frame.len()
    );

    // Raw WebSocket: the same.
    let (mut ws, _) = open_offering_deflate(compressed, "/echo/websocket").await;
    assert!(ws.deflate().is_some());
    ws.send(Message::text(body.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text(body.clone()));

    // Not configured: the offer is declined and messages go as they are.
    let (mut ws, _) = open_offering_deflate(plain, "/echo/websocket").await;
    assert!(ws.deflate().is_none(), "no compression unless configured");
    ws.send(Message::text(body.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text(body));
}
