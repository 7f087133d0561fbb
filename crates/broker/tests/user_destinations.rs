//! `/user/...` destinations with two users and three sessions, the broker's send handle, and
//! client SENDs to `/user/{name}/...` (refused by default).

use std::time::Duration;

use serde::Serialize;
use stompbox_broker::{Access, Broker, Json, Payload, PermissionRule, Permissions, SendError};
use stompbox_codec::Frame;
use stompbox_test_support::{TestClient, frames};

const QUIET: Duration = Duration::from_millis(50);

async fn login(broker: &Broker, user: &str) -> TestClient {
    TestClient::connect_with(broker, frames::connect().with_header("login", user))
        .await
        .0
}

fn body(frame: &Frame) -> &str {
    std::str::from_utf8(&frame.body).unwrap()
}

/// alice on two sessions, bob on one, an anonymous session; all subscribed to
/// `/user/queue/notifications`.
async fn three_sessions(broker: &Broker) -> (TestClient, TestClient, TestClient, TestClient) {
    let mut a1 = login(broker, "alice").await;
    let mut a2 = login(broker, "alice").await;
    let mut bob = login(broker, "bob").await;
    let mut anon = TestClient::connect(broker).await;
    for (i, c) in [&mut a1, &mut a2, &mut bob, &mut anon]
        .into_iter()
        .enumerate()
    {
        c.subscribe(&format!("n{i}"), "/user/queue/notifications")
            .await;
    }
    (a1, a2, bob, anon)
}

#[tokio::test]
async fn send_to_user_reaches_every_session_of_that_user_and_nobody_else() {
    let broker = Broker::new();
    let (mut a1, mut a2, mut bob, mut anon) = three_sessions(&broker).await;
    assert_eq!(
        broker
            .send_to_user("alice", "/queue/notifications", "for alice")
            .unwrap(),
        2
    );
    for (c, sub) in [(&mut a1, "n0"), (&mut a2, "n1")] {
        let m = c.expect_message().await;
        assert_eq!(m.header("destination"), Some("/user/queue/notifications"));
        assert_eq!(m.header("subscription"), Some(sub));
        assert_eq!(body(&m), "for alice");
    }
    assert_eq!(
        broker
            .send_to_user("bob", "/queue/notifications", "for bob")
            .unwrap(),
        1
    );
    assert_eq!(body(&bob.expect_message().await), "for bob");
    // Other destinations of the same user, and unknown users, reach nobody.
    assert_eq!(
        broker.send_to_user("alice", "/queue/other", "x").unwrap(),
        0
    );
    assert_eq!(
        broker
            .send_to_user("carol", "/queue/notifications", "x")
            .unwrap(),
        0
    );
    // The same through `send` with `/user/{name}/...`.
    assert_eq!(
        broker
            .send("/user/bob/queue/notifications", "again bob")
            .unwrap(),
        1
    );
    assert_eq!(body(&bob.expect_message().await), "again bob");
    for c in [&mut a1, &mut a2, &mut bob, &mut anon] {
        c.expect_no_frame(QUIET).await;
    }
}

#[tokio::test]
async fn a_closed_session_leaves_the_users_other_sessions_subscribed() {
    let broker = Broker::new();
    let (a1, mut a2, _bob, _anon) = three_sessions(&broker).await;
    a1.disconnect().await;
    assert_eq!(
        broker
            .send_to_user("alice", "/queue/notifications", "x")
            .unwrap(),
        1
    );
    assert_eq!(body(&a2.expect_message().await), "x");
    a2.send_frame(frames::unsubscribe("n1").with_header("receipt", "u"))
        .await;
    a2.expect_receipt("u").await;
    assert_eq!(
        broker
            .send_to_user("alice", "/queue/notifications", "x")
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn client_sends_to_other_users_are_refused_by_default() {
    let broker = Broker::new();
    let (_a1, _a2, mut bob, _anon) = three_sessions(&broker).await;
    bob.send_frame(frames::send("/user/alice/queue/notifications", "spam"))
        .await;
    let e = bob
        .expect_error("access refused: /user/alice/queue/notifications")
        .await;
    assert!(
        body(&e).contains(
            r#"send to "/user/alice/queue/notifications" is not permitted for user "bob""#
        ),
        "{e:?}"
    );
    assert_eq!(broker.stats().messages_delivered, 0);
}

#[tokio::test]
async fn client_sends_to_users_when_allowed() {
    let broker = Broker::builder()
        .permissions(
            Permissions::new(vec![PermissionRule::allow(
                &[Access::Send, Access::Subscribe],
                ["#"],
            )])
            .unwrap(),
        )
        .build()
        .unwrap();
    let (mut a1, mut a2, mut bob, mut anon) = three_sessions(&broker).await;
    bob.send_frame(
        frames::send("/user/alice/queue/notifications", "hi alice")
            .with_header("x-from", "bob")
            .with_header("receipt", "r"),
    )
    .await;
    bob.expect_receipt("r").await;
    for c in [&mut a1, &mut a2] {
        let m = c.expect_message().await;
        assert_eq!(m.header("destination"), Some("/user/queue/notifications"));
        assert_eq!((m.header("x-from"), body(&m)), (Some("bob"), "hi alice"));
    }
    bob.send_frame(frames::send("/user/alice", "no destination"))
        .await;
    bob.expect_error("user destination not allowed").await;
    anon.expect_no_frame(QUIET).await;
}

#[derive(Serialize)]
struct Tick {
    n: u32,
}

#[tokio::test]
async fn the_send_handle_works_from_any_task() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("0", "/topic/ticks").await;
    let handle = broker.clone();
    tokio::spawn(async move {
        for n in 0..3 {
            handle.send("/topic/ticks", Json(Tick { n })).unwrap();
        }
        handle
            .send(
                "/topic/ticks",
                Payload::text("done").header("x-last", "yes"),
            )
            .unwrap();
    })
    .await
    .unwrap();
    for n in 0..3 {
        let m = c.expect_message().await;
        assert_eq!(m.header("content-type"), Some("application/json"));
        assert_eq!(body(&m), format!(r#"{{"n":{n}}}"#));
    }
    let m = c.expect_message().await;
    assert_eq!((m.header("x-last"), body(&m)), (Some("yes"), "done"));
    assert!(m.header("message-id").is_some());
    assert!(matches!(
        broker.send("/app/chat", "x"),
        Err(SendError::NotSendable { .. })
    ));
    assert!(matches!(
        broker.send("/topic/", "x"),
        Err(SendError::InvalidDestination(_))
    ));
    assert!(broker.send("/user/alice", "x").is_err());
    assert!(broker.send_to_user("alice", "queue/x", "x").is_err());
}

#[tokio::test]
async fn server_sends_with_a_nul_in_a_header_are_refused() {
    // STOMP cannot carry a NUL in a header (no escape; it ends a frame for most readers), so
    // server code is told instead of its header being changed on the way out.
    let broker = Broker::new();
    let mut c = login(&broker, "alice").await;
    c.subscribe("0", "/topic/nul").await;
    c.subscribe("1", "/user/queue/nul").await;
    let nul = |name: &str| SendError::NulInHeader { name: name.into() };
    let text = || Payload::text("x");
    assert_eq!(
        broker.send("/topic/nul", text().header("k", "a\0b")),
        Err(nul("k"))
    );
    assert_eq!(
        broker.send("/topic/nul", text().header("k\0", "v")),
        Err(nul("k\0"))
    );
    assert_eq!(
        broker.send("/topic/nul\0x", text()),
        Err(nul("destination"))
    );
    assert_eq!(
        broker.send_to_user("alice", "/queue/nul", text().header("k", "\0")),
        Err(nul("k"))
    );
    assert_eq!(
        broker.send_to_user("alice", "/queue/nul\0", text()),
        Err(nul("destination"))
    );
    assert_eq!(
        nul("k").to_string(),
        r#"NUL byte in header "k": STOMP cannot carry it"#
    );
    broker.send("/topic/nul", text().header("k", "v")).unwrap();
    let m = c.expect_message().await;
    assert_eq!(m.header("k"), Some("v"));
    c.expect_no_frame(Duration::from_millis(50)).await;
}
