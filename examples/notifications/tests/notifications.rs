//! Drives the notifications example over real sockets: every kind of event reaches the right
//! user's tabs and nobody else, unread ones arrive on subscription, marking one read updates
//! every tab, players notify their opponent, and bad credentials are refused.

use serde_json::{Value, json};
use stompbox_codec::{Command, Frame};
use stompbox_test_support::{frames, http, wire::within, ws::WsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn http_post_json(addr: std::net::SocketAddr, path: &str, body: &Value) -> String {
    let body = body.to_string();
    let mut s = within("connect", TcpStream::connect(addr)).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within("response", s.read_to_string(&mut response))
        .await
        .unwrap();
    response
}

fn json_of(frame: &Frame) -> Value {
    serde_json::from_slice(&frame.body).unwrap()
}

async fn login(url: &str, user: &str) -> WsClient {
    let mut c = WsClient::open(url).await;
    let connect = frames::connect()
        .with_header("login", user)
        .with_header("passcode", example_notifications::DEMO_PASSCODE);
    c.send_frame(&connect).await;
    c.expect_frame(Command::Connected).await;
    c.subscribe("n", "/user/queue/notifications").await;
    c.subscribe("e", "/user/queue/errors").await;
    c
}

/// Checks nothing is pending for `c`: a receipt for a new frame comes back before anything else.
async fn quiet(c: &mut WsClient) {
    c.send_frame(
        &Frame::new(Command::Send)
            .with_header("destination", "/topic/void")
            .with_header("receipt", "q"),
    )
    .await;
    let f = c.expect_frame(Command::Receipt).await;
    assert_eq!(f.header("receipt-id"), Some("q"));
}

#[tokio::test]
async fn climbing_notifications_end_to_end() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(example_notifications::serve(listener, async move {
        let _ = stopped.await;
    }));
    let url = format!("ws://{addr}/stomp");

    // Wrong passcode: refused.
    let mut intruder = WsClient::open(&url).await;
    intruder
        .send_frame(
            &frames::connect()
                .with_header("login", "alice")
                .with_header("passcode", "x"),
        )
        .await;
    let e = intruder.expect_frame(Command::Error).await;
    assert_eq!(e.header("message"), Some("invalid login or passcode"));

    let mut alice_phone = login(&url, "alice").await;
    let mut alice_web = login(&url, "alice").await;
    let mut bob = login(&url, "bob").await;

    let events = [
        json!({"type":"match_request_received","from":"bob"}),
        json!({"type":"match_made","match_id":"m1","opponent":"bob"}),
        json!({"type":"opponent_ready","match_id":"m1","opponent":"bob"}),
        json!({"type":"match_cancelled","match_id":"m0","by":"carol"}),
        json!({"type":"post_liked","post_id":7,"by":"bob"}),
        json!({"type":"route_completed","climber":"carol","route":"Nose","grade":"7a"}),
        json!({"type":"personal_record","grade":"7a+"}),
        json!({"type":"ranking_changed","from":12,"to":9}),
    ];
    for (i, event) in events.iter().enumerate() {
        let response = http_post_json(addr, "/notify/alice", event).await;
        assert!(response.starts_with("HTTP/1.1 201"), "{response}");
        let mut expected = event.clone();
        expected["id"] = json!(i + 1);
        expected["read"] = json!(false);
        for tab in [&mut alice_phone, &mut alice_web] {
            let m = tab.expect_frame(Command::Message).await;
            assert_eq!(m.header("destination"), Some("/user/queue/notifications"));
            assert_eq!(m.header("content-type"), Some("application/json"));
            assert_eq!(json_of(&m), expected);
        }
    }
    quiet(&mut bob).await;

    // A new tab gets the unread ones when it subscribes.
    let mut alice_tablet = login(&url, "alice").await;
    alice_tablet
        .send_frame(&frames::subscribe("unread", "/app/notifications.unread"))
        .await;
    let m = alice_tablet.expect_frame(Command::Message).await;
    assert_eq!(m.header("subscription"), Some("unread"));
    assert_eq!(json_of(&m).as_array().unwrap().len(), 8);

    // Marking one read: every one of alice's tabs hears it.
    alice_phone
        .send_frame(&frames::send("/app/notifications.3.read", ""))
        .await;
    for tab in [&mut alice_phone, &mut alice_web, &mut alice_tablet] {
        let m = tab.expect_frame(Command::Message).await;
        assert_eq!(json_of(&m), json!({"type":"read","id":3}));
    }
    alice_tablet
        .send_frame(&frames::subscribe("unread2", "/app/notifications.unread"))
        .await;
    let m = alice_tablet.expect_frame(Command::Message).await;
    let ids: Vec<u64> = json_of(&m)
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 4, 5, 6, 7, 8]);

    // Bob cannot mark alice's notification; the error is his alone.
    bob.send_frame(&frames::send("/app/notifications.1.read", ""))
        .await;
    let e = bob.expect_frame(Command::Message).await;
    assert_eq!(
        (e.header("subscription"), &e.body[..]),
        (Some("e"), &b"no notification 1"[..])
    );

    // Bob is ready: alice's tabs are told.
    bob.send_frame(&frames::send(
        "/app/matches.m1.ready",
        r#"{"opponent":"alice"}"#,
    ))
    .await;
    for tab in [&mut alice_phone, &mut alice_web, &mut alice_tablet] {
        let m = tab.expect_frame(Command::Message).await;
        assert_eq!(
            json_of(&m),
            json!({"id":9,"type":"opponent_ready","match_id":"m1","opponent":"bob","read":false})
        );
    }
    quiet(&mut bob).await;

    stop.send(()).unwrap();
    within("shutdown", server).await.unwrap().unwrap();
}

/// The page's way in: `EventSource` on `/events` with the user in the query, `POST /publish`
/// with HTTP Basic to mark one read.
#[tokio::test]
async fn a_page_without_stomp_listens_with_server_sent_events() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(example_notifications::serve(listener, async move {
        let _ = stopped.await;
    }));
    let page = http::request(addr, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.rest().await.contains("new EventSource(`/events?"));

    http_post_json(
        addr,
        "/notify/carol",
        &json!({"type":"personal_record","grade":"7a"}),
    )
    .await;
    let events = "/events?destination=/app/notifications.unread\
                  &destination=/user/queue/notifications&user=carol&passcode=climb";
    let mut carol = http::request(addr, "GET", events, &[], b"").await;
    assert_eq!(carol.status, 200, "{}", carol.head);
    carol.block().await;
    let unread: Value = serde_json::from_str(&carol.event().await.data).unwrap();
    assert_eq!(
        unread,
        json!([{"id":1,"type":"personal_record","grade":"7a","read":false}])
    );

    let liked = json!({"type":"post_liked","post_id":7,"by":"bob"});
    http_post_json(addr, "/notify/carol", &liked).await;
    let event: Value = serde_json::from_str(&carol.event().await.data).unwrap();
    assert_eq!(event["type"], "post_liked");

    // "carol:climb"
    let basic = [
        ("authorization", "Basic Y2Fyb2w6Y2xpbWI="),
        ("content-type", "application/json"),
    ];
    let read = br#"{"destination":"/app/notifications.2.read"}"#;
    let response = http::request(addr, "POST", "/publish", &basic, read).await;
    assert_eq!(response.status, 202);
    let event: Value = serde_json::from_str(&carol.event().await.data).unwrap();
    assert_eq!(event, json!({"type":"read","id":2}));

    let wrong = events.replace("passcode=climb", "passcode=nope");
    let refused = http::request(addr, "GET", &wrong, &[], b"").await;
    assert_eq!(refused.status, 401);

    drop(carol);
    stop.send(()).unwrap();
    within("shutdown", server).await.unwrap().unwrap();
}
