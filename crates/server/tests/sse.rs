//! The HTTP endpoints for clients without STOMP: Server-Sent Events (`GET /sse`) and
//! `POST /publish`, through the server's HTTP edge with a raw HTTP/1.0 client (so that a
//! stream's body arrives as written, without chunked encoding). A real `EventSource` is tested
//! in `interop/stompjs/test/sse-browser.test.js`.

mod common;

use std::time::Duration;

use common::http::{Headers, request, sse_path};
use common::{TestServer, WsClient, frames, users_file, within};
use jsonwebtoken::{EncodingKey, Header};
use stompbox_broker::{Access, PermissionRule};
use stompbox_codec::Frame;
use stompbox_server::ServerConfig;

/// Waits until `check` holds, polling: for what the server does in the background.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn messages_become_events_and_a_reconnect_resumes_with_nothing_missed() {
    let server = TestServer::start(|_| {}).await;
    let addr = server.ws_addr;
    let path = sse_path(&["/topic/news", "/queue/jobs"]);
    let mut sse = request(addr, "GET", &path, &[], b"").await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    assert!(
        sse.head.contains("content-type: text/event-stream"),
        "{}",
        sse.head
    );
    assert!(sse.head.contains("cache-control: no-cache"), "{}", sse.head);
    let opening = sse.block().await;
    let stream_id = opening
        .strip_prefix("retry: 3000\nid: ")
        .unwrap_or_else(|| panic!("{opening:?}"))
        .to_owned();

    let broker = &server.broker;
    broker.send("/topic/news", "one").unwrap();
    let one = sse.event().await;
    assert_eq!((one.event.as_str(), one.data.as_str()), ("message", "one"));
    assert_ne!(one.id, stream_id);
    broker
        .send("/topic/news", "line 1\nline 2\r\nline 3")
        .unwrap();
    assert_eq!(sse.event().await.data, "line 1\nline 2\nline 3");
    broker.send("/queue/jobs", "job").unwrap();
    assert_eq!(sse.event().await.data, "job");

    // The connection drops; what is sent meanwhile waits for the reconnect, which says it had
    // last seen "one" (the two after it were written but, say, never arrived).
    drop(sse);
    broker.send("/topic/news", "two").unwrap();
    broker.send("/queue/jobs", "three").unwrap();
    let mut resumed = request(addr, "GET", &path, &[("last-event-id", &one.id)], b"").await;
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.block().await, "retry: 3000");
    let mut data = Vec::new();
    for _ in 0..4 {
        data.push(resumed.event().await.data);
    }
    assert_eq!(data, ["line 1\nline 2\nline 3", "job", "two", "three"]);
    broker.send("/topic/news", "four").unwrap();
    assert_eq!(resumed.event().await.data, "four");

    // A client with no event yet resumes from the stream's own id and gets everything kept;
    // it takes the stream over from the connection above.
    let mut again = request(addr, "GET", &path, &[("last-event-id", &stream_id)], b"").await;
    again.block().await;
    assert_eq!(again.event().await, one);
    assert!(resumed.rest().await.is_empty(), "the old connection ends");

    // An unknown id starts a stream of its own, with only what comes next.
    let mut fresh = request(addr, "GET", &path, &[("last-event-id", "nope")], b"").await;
    assert!(fresh.block().await.starts_with("retry: 3000\nid: "));
    broker.send("/topic/news", "five").unwrap();
    assert_eq!(fresh.event().await.data, "five");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stream_whose_client_does_not_come_back_ends_its_session() {
    let server = TestServer::start(|c| c.sse.resume_window = Duration::from_millis(200)).await;
    let mut sse = request(server.ws_addr, "GET", &sse_path(&["/topic/a"]), &[], b"").await;
    sse.block().await;
    assert_eq!(server.broker.send("/topic/a", "x").unwrap(), 1);
    sse.event().await;
    drop(sse);
    let broker = &server.broker;
    eventually("the session to end", || broker.stats().connections == 0).await;
    assert_eq!(broker.send("/topic/a", "y").unwrap(), 0, "unsubscribed");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn binary_bodies_are_skipped_with_a_comment_and_idle_streams_get_keepalives() {
    let server = TestServer::start(|c| {
        c.sse.keepalive_interval = Duration::from_millis(100);
        c.sse.event = "note".to_owned();
    })
    .await;
    let mut sse = request(server.ws_addr, "GET", &sse_path(&["/topic/a"]), &[], b"").await;
    sse.block().await;
    assert_eq!(sse.block().await, ":", "a keep-alive comment");
    server
        .broker
        .send("/topic/a", bytes::Bytes::from_static(b"\xff\xfe"))
        .unwrap();
    server.broker.send("/topic/a", "text").unwrap();
    let skipped = sse.block().await;
    assert!(
        skipped.starts_with(": message ") && skipped.contains("skipped"),
        "{skipped}"
    );
    let text = sse.event().await;
    assert_eq!((text.event.as_str(), text.data.as_str()), ("note", "text"));
    server.shutdown().await.unwrap();
}

/// A users file with `alice` (role `user`) and `root` (role `admin`), and the chat rules.
fn secured(dir: &tempfile::TempDir, config: &mut ServerConfig) {
    use Access::{Send, Subscribe};
    config.auth.users_file = Some(users_file(dir));
    config.auth.jwt = Some(stompbox_auth::JwtConfig {
        secret: Some(SECRET.into()),
        ..Default::default()
    });
    config.websocket.allowed_origins = vec!["https://app.example".into()];
    config.broker.login.max_failures = 100;
    config.permissions = vec![
        PermissionRule::allow(&[Send, Subscribe], ["#"]).for_roles(["admin"]),
        PermissionRule::allow(&[Send, Subscribe], ["/topic/chat.*"]).for_roles(["user"]),
        PermissionRule::allow(&[Subscribe], ["/user/queue/*"]).for_roles(["user"]),
    ];
}

fn connect_as(login: &str, passcode: &str) -> Frame {
    frames::connect()
        .with_header("login", login)
        .with_header("passcode", passcode)
}

const SECRET: &str = "a test secret of enough length for HS256";
/// `alice:alice-pw`.
const ALICE: &str = "Basic YWxpY2U6YWxpY2UtcHc=";
/// `root:root-pw`.
const ROOT: &str = "Basic cm9vdDpyb290LXB3";

fn token(sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({ "sub": sub, "exp": exp, "roles": ["user"] });
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn streams_are_authenticated_and_refusals_are_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(|c| secured(&dir, c)).await;
    let addr = server.ws_addr;
    let chat = sse_path(&["/topic/chat.lobby"]);
    let cases: [(&str, Headers, u16, &str); 6] = [
        (
            "/sse",
            &[("authorization", ALICE)],
            400,
            "at least one destination",
        ),
        (&chat, &[], 401, "login"),
        (
            &chat,
            &[("authorization", "Basic YWxpY2U6eA==")],
            401,
            "bad credentials",
        ),
        (
            &sse_path(&["/topic/chat.lobby", "/topic/secret"]),
            &[("authorization", ALICE)],
            403,
            "access refused: /topic/secret",
        ),
        (
            &sse_path(&["/nowhere"]),
            &[("authorization", ALICE)],
            400,
            "/nowhere",
        ),
        (
            &chat,
            &[("authorization", ALICE), ("origin", "https://evil.example")],
            403,
            "origin not allowed",
        ),
    ];
    for (path, headers, status, expected) in cases {
        let response = request(addr, "GET", path, headers, b"").await;
        assert_eq!(
            response.status, status,
            "{path} {headers:?}: {}",
            response.head
        );
        if status == 401 {
            assert!(
                response.head.contains("www-authenticate: bearer"),
                "{}",
                response.head
            );
        }
        let body = response.rest().await;
        assert!(body.contains(expected), "{path} {headers:?}: {body}");
    }

    // Basic credentials, and a `/user/` stream that only its user receives.
    let mine = sse_path(&["/topic/chat.lobby", "/user/queue/inbox"]);
    let headers = [("authorization", ALICE), ("origin", "https://app.example")];
    let mut alice = request(addr, "GET", &mine, &headers, b"").await;
    assert_eq!(alice.status, 200);
    assert!(
        alice
            .head
            .contains("access-control-allow-origin: https://app.example")
    );
    alice.block().await;
    // A bearer token in the query, as for a WebSocket.
    let with_token = format!("{mine}&access_token={}", token("bob"));
    let mut bob = request(addr, "GET", &with_token, &[], b"").await;
    assert_eq!(bob.status, 200, "{}", bob.head);
    bob.block().await;
    let broker = &server.broker;
    assert_eq!(
        broker
            .send_to_user("alice", "/queue/inbox", "for alice")
            .unwrap(),
        1
    );
    let for_alice = alice.event().await;
    assert_eq!(for_alice.data, "for alice");
    broker.send("/topic/chat.lobby", "all").unwrap();
    assert_eq!(bob.event().await.data, "all", "bob had nothing before");
    assert_eq!(alice.event().await.data, "all");

    // Resuming needs the same user: bob cannot take alice's stream with her event's id.
    let last = &for_alice.id;
    let mut stolen = request(addr, "GET", &with_token, &[("last-event-id", last)], b"").await;
    assert!(
        stolen.block().await.contains("id: "),
        "a fresh stream of bob's"
    );
    broker
        .send_to_user("alice", "/queue/inbox", "private")
        .unwrap();
    assert_eq!(alice.event().await.data, "private");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn publish_routes_json_and_raw_messages_and_answers_202() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(|c| {
        secured(&dir, c);
        c.publish.max_body_size = 1024;
    })
    .await;
    let addr = server.ws_addr;
    let mut root = WsClient::open(&server.ws_url).await;
    root.handshake(connect_as("root", "root-pw")).await;
    root.subscribe("all", "/topic/#").await;
    let mut alice = WsClient::open(&server.ws_url).await;
    alice.handshake(connect_as("alice", "alice-pw")).await;
    alice.subscribe("me", "/user/queue/inbox").await;

    let json = br#"{"destination":"/topic/chat.lobby","headers":{"priority":5},
                    "body":{"text":"hi"}}"#;
    let headers = [
        ("authorization", ALICE),
        ("content-type", "application/json"),
    ];
    let response = request(addr, "POST", "/publish", &headers, json).await;
    assert_eq!(response.status, 202);
    assert_eq!(response.rest().await, "accepted\n");
    let message = root.expect_message().await;
    assert_eq!(message.header("content-type"), Some("application/json"));
    assert_eq!(message.header("priority"), Some("5"));
    assert_eq!(&message.body[..], br#"{"text":"hi"}"#);

    // Raw, to a user (what a backend posts for user 42 in the documents).
    let target = "/publish?destination=/user/alice/queue/inbox&kind=match";
    let headers = [("authorization", ROOT), ("content-type", "text/plain")];
    let response = request(addr, "POST", target, &headers, b"your match is ready").await;
    assert_eq!(response.status, 202);
    let message = alice.expect_message().await;
    assert_eq!(message.header("kind"), Some("match"));
    assert_eq!(message.header("content-type"), Some("text/plain"));
    assert_eq!(&message.body[..], b"your match is ready");

    let big = vec![b'x'; 1025];
    let to_lobby = "/publish?destination=/topic/chat.lobby";
    let cases: [(&str, Headers, &[u8], u16, &str); 6] = [
        (to_lobby, &[], b"x", 401, "login"),
        (
            "/publish?destination=/topic/secret",
            &[("authorization", ALICE)],
            b"x",
            403,
            "access refused",
        ),
        (
            to_lobby,
            &[("authorization", ALICE)],
            &big,
            413,
            "publish.max_body_size",
        ),
        (
            "/publish",
            &[
                ("authorization", ALICE),
                ("content-type", "application/json"),
            ],
            b"{\"destination\":",
            400,
            "not valid",
        ),
        (
            "/publish?destination=/nowhere",
            &[("authorization", ROOT)],
            b"x",
            400,
            "/nowhere",
        ),
        (
            to_lobby,
            &[("authorization", ALICE), ("origin", "https://evil.example")],
            b"x",
            403,
            "origin not allowed",
        ),
    ];
    for (target, headers, body, status, expected) in cases {
        let response = request(addr, "POST", target, headers, body).await;
        assert_eq!(
            response.status, status,
            "{target} {headers:?}: {}",
            response.head
        );
        let text = response.rest().await;
        assert!(text.contains(expected), "{target} {headers:?}: {text}");
    }
    // A GET is not a publish.
    assert_eq!(request(addr, "GET", to_lobby, &[], b"").await.status, 405);
    // None of the refused ones reached anybody.
    root.expect_no_frame(Duration::from_millis(50)).await;
    assert_eq!(server.broker.stats().connections, 2);
    server.shutdown().await.unwrap();
}
