//! `/app` handlers: extraction, each return kind, rejections and the error policy, subscribe
//! handlers, per-session order, custom prefixes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stompbox_broker::{
    Broker, CloseReason, HandlerError, HandlerErrorPolicy, Json, Path, Payload, Principal, SendTo,
    SendToUser, SessionInfo, State,
};
use stompbox_codec::{Frame, Headers};
use stompbox_test_support::{TestClient, frames};
use tokio::sync::{Mutex, mpsc, oneshot};

const QUIET: Duration = Duration::from_millis(50);

async fn login(broker: &Broker, user: &str) -> TestClient {
    TestClient::connect_with(broker, frames::connect().with_header("login", user))
        .await
        .0
}

fn body(frame: &Frame) -> &str {
    std::str::from_utf8(&frame.body).unwrap()
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Chat {
    text: String,
}

#[derive(Clone)]
struct Greeting(&'static str);

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Seen {
    room: String,
    id: u32,
    trace: Option<String>,
    session: String,
    user: Option<String>,
    greeting: String,
    text: String,
}

async fn everything(
    Path((room, id)): Path<(String, u32)>,
    headers: Headers,
    session: SessionInfo,
    State(greeting): State<Greeting>,
    Json(chat): Json<Chat>,
) -> SendTo<Json<Seen>> {
    SendTo::new(
        "/topic/seen",
        Json(Seen {
            room,
            id,
            trace: headers.get("x-trace").map(str::to_owned),
            session: session.id,
            user: session.principal.map(|p| p.name),
            greeting: greeting.0.to_owned(),
            text: chat.text,
        }),
    )
}

#[tokio::test]
async fn extractors_see_variables_headers_session_state_and_json() {
    let broker = Broker::builder()
        .state(Greeting("hello"))
        .on_send("/rooms/{room}/msg.{id}", everything)
        .build()
        .unwrap();
    let mut watcher = TestClient::connect(&broker).await;
    watcher.subscribe("w", "/topic/seen").await;
    let (mut alice, connected) =
        TestClient::connect_with(&broker, frames::connect().with_header("login", "alice")).await;
    alice
        .send_frame(
            frames::send("/app/rooms/lobby/msg.42", r#"{"text":"hi"}"#)
                .with_header("x-trace", "t1"),
        )
        .await;
    let m = watcher.expect_message().await;
    assert_eq!(m.header("content-type"), Some("application/json"));
    assert_eq!(m.header("destination"), Some("/topic/seen"));
    let seen: Seen = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(
        seen,
        Seen {
            room: "lobby".into(),
            id: 42,
            trace: Some("t1".into()),
            session: connected.header("session").unwrap().to_owned(),
            user: Some("alice".into()),
            greeting: "hello".into(),
            text: "hi".into(),
        }
    );
}

#[tokio::test]
async fn raw_and_text_payloads_and_bare_replies_go_to_topic_plus_path() {
    async fn raw(body: Bytes) -> Bytes {
        let mut v = body.to_vec();
        v.reverse();
        Bytes::from(v)
    }
    async fn text(body: String) -> String {
        body.to_uppercase()
    }
    let broker = Broker::builder()
        .on_send("/raw", raw)
        .on_send("/text", text)
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("r", "/topic/raw").await;
    c.subscribe("t", "/topic/text").await;
    c.send_frame(frames::send("/app/raw", &b"\x00\x01\xff"[..]))
        .await;
    let m = c.expect_message().await;
    assert_eq!(
        (m.header("subscription"), &m.body[..]),
        (Some("r"), &b"\xff\x01\x00"[..])
    );
    c.send_frame(frames::send("/app/text", "abc")).await;
    let m = c.expect_message().await;
    assert_eq!(
        (m.header("destination"), body(&m)),
        (Some("/topic/text"), "ABC")
    );
    assert_eq!(m.header("content-type"), Some("text/plain;charset=utf-8"));
    // A body that is not UTF-8 is rejected by the `String` extractor.
    c.subscribe("e", "/user/queue/errors").await;
    c.send_frame(frames::send("/app/text", &b"\xff"[..])).await;
    let e = c.expect_message().await;
    assert_eq!(e.header("message"), Some("payload is not UTF-8"));
}

#[tokio::test]
async fn unit_return_sends_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let broker = Broker::builder()
        .state(tx)
        .on_send(
            "/log",
            |State(tx): State<mpsc::UnboundedSender<String>>, text: String| async move {
                tx.send(text).unwrap();
            },
        )
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("t", "/topic/log").await;
    c.subscribe("e", "/user/queue/errors").await;
    c.send_frame(frames::send("/app/log", "x")).await;
    assert_eq!(rx.recv().await.as_deref(), Some("x"));
    c.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn send_to_user_reaches_all_the_users_sessions_or_only_the_sender() {
    let broker = Broker::builder()
        .on_send("/all", |text: String| async move {
            SendToUser::new("/queue/reply", text)
        })
        .on_send("/me", |text: String| async move {
            SendToUser::new("/queue/reply", text).session_only()
        })
        .build()
        .unwrap();
    let mut a1 = login(&broker, "alice").await;
    let mut a2 = login(&broker, "alice").await;
    let mut bob = login(&broker, "bob").await;
    for c in [&mut a1, &mut a2, &mut bob] {
        c.subscribe("r", "/user/queue/reply").await;
    }
    a1.send_frame(frames::send("/app/all", "to both")).await;
    for c in [&mut a1, &mut a2] {
        let m = c.expect_message().await;
        assert_eq!(
            (m.header("destination"), body(&m)),
            (Some("/user/queue/reply"), "to both")
        );
        assert_eq!(m.header("subscription"), Some("r"));
    }
    a1.send_frame(frames::send("/app/me", "to a1")).await;
    assert_eq!(body(&a1.expect_message().await), "to a1");
    a2.expect_no_frame(QUIET).await;
    bob.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn results_options_and_tuples_become_every_part() {
    async fn parts(
        text: String,
    ) -> Result<(SendTo<String>, Option<SendToUser<String>>), HandlerError> {
        if text == "fail" {
            return Err(HandlerError::new("cannot", "this text fails"));
        }
        let _: u32 = text.parse()?;
        Ok((
            SendTo::new("/topic/a", text.clone()),
            Some(SendToUser::new("/queue/b", text)),
        ))
    }
    let broker = Broker::builder().on_send("/parts", parts).build().unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("a", "/topic/a").await;
    c.subscribe("b", "/user/queue/b").await;
    c.subscribe("e", "/user/queue/errors").await;
    c.send_frame(frames::send("/app/parts", "7")).await;
    assert_eq!(c.expect_message().await.header("subscription"), Some("a"));
    assert_eq!(c.expect_message().await.header("subscription"), Some("b"));
    c.send_frame(frames::send("/app/parts", "fail")).await;
    let e = c.expect_message().await;
    assert_eq!(
        (e.header("message"), body(&e)),
        (Some("cannot"), "this text fails")
    );
    c.send_frame(frames::send("/app/parts", "x")).await;
    let e = c.expect_message().await;
    assert_eq!(e.header("message"), Some("handler failed"));
    assert_eq!(body(&e), "invalid digit found in string");
}

async fn post(Json(chat): Json<Chat>) -> SendTo<Json<Chat>> {
    SendTo::new("/topic/chat", Json(chat))
}

#[tokio::test]
async fn bad_json_is_reported_on_user_queue_errors_and_the_session_stays_usable() {
    let broker = Broker::builder().on_send("/chat", post).build().unwrap();
    let mut c = TestClient::connect(&broker).await;
    let mut other = TestClient::connect(&broker).await;
    other.subscribe("e", "/user/queue/errors").await;
    c.subscribe("e", "/user/queue/errors").await;
    c.subscribe("c", "/topic/chat").await;
    c.send_frame(frames::send("/app/chat", r#"{"txt":"hi"}"#))
        .await;
    let e = c.expect_message().await;
    assert_eq!(e.header("destination"), Some("/user/queue/errors"));
    assert_eq!(e.header("message"), Some("invalid JSON payload"));
    assert_eq!(e.header("failed-destination"), Some("/app/chat"));
    assert_eq!(
        body(&e),
        "invalid JSON payload: missing field `text` at line 1 column 12"
    );
    c.send_frame(frames::send("/app/chat", "{not json")).await;
    let e = c.expect_message().await;
    assert!(
        body(&e).starts_with("invalid JSON payload: key must be a string at line 1 column 2"),
        "{}",
        body(&e)
    );
    // Still connected and served.
    c.send_frame(frames::send("/app/chat", r#"{"text":"ok"}"#))
        .await;
    let m = c.expect_message().await;
    assert_eq!(
        (m.header("subscription"), body(&m)),
        (Some("c"), r#"{"text":"ok"}"#)
    );
    // Nobody else sees another session's errors.
    other.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn path_rejections_and_unknown_destinations_are_reported() {
    let broker = Broker::builder()
        .on_send("/item.{id}", |Path(id): Path<u32>| async move {
            SendToUser::new("/queue/r", id.to_string())
        })
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("e", "/user/queue/errors").await;
    c.send_frame(frames::send("/app/item.x", "")).await;
    let e = c.expect_message().await;
    assert_eq!(e.header("message"), Some("invalid destination variables"));
    assert_eq!(
        body(&e),
        "invalid destination variables: destination variable \"id\" = \"x\": invalid digit found in string"
    );
    c.send_frame(frames::send("/app/nothing.here", "")).await;
    let e = c.expect_message().await;
    assert_eq!(e.header("message"), Some("no handler"));
    assert_eq!(body(&e), "no send handler matches \"/app/nothing.here\"");
}

#[tokio::test]
async fn a_reply_with_a_nul_in_a_header_is_not_delivered_and_reported() {
    // The handler copies the body (which may hold NULs) into a header: STOMP cannot carry it.
    let broker = Broker::builder()
        .on_send("/tag", |body: String| async move {
            SendTo::new("/topic/tags", Payload::text("x").header("tag", &body))
        })
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("e", "/user/queue/errors").await;
    c.subscribe("t", "/topic/tags").await;
    c.send_frame(frames::send("/app/tag", &b"a\0b"[..])).await;
    let e = c.expect_message().await;
    assert_eq!(e.header("destination"), Some("/user/queue/errors"));
    assert_eq!(e.header("message"), Some("reply not delivered"));
    assert_eq!(
        body(&e),
        r#"NUL byte in header "tag": STOMP cannot carry it"#
    );
    c.send_frame(frames::send("/app/tag", "ok")).await;
    let m = c.expect_message().await;
    assert_eq!(
        (m.header("subscription"), m.header("tag")),
        (Some("t"), Some("ok"))
    );
}

#[tokio::test]
async fn error_and_close_policy_sends_error_and_closes() {
    let broker = Broker::builder()
        .handler_errors(HandlerErrorPolicy::ErrorAndClose)
        .on_send("/chat", post)
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("c", "/topic/chat").await;
    c.send_frame(frames::send("/app/chat", r#"{"text":"first"}"#))
        .await;
    c.send_frame(frames::send("/app/chat", "7")).await;
    // The reply to the first frame is written before the ERROR.
    assert_eq!(body(&c.expect_message().await), r#"{"text":"first"}"#);
    let e = c.expect_error("invalid JSON payload").await;
    assert!(
        body(&e).contains("invalid type: integer `7`, expected struct Chat"),
        "{}",
        body(&e)
    );
    assert_eq!(
        c.expect_closed().await,
        CloseReason::ProtocolError("invalid JSON payload".into())
    );
}

#[tokio::test]
async fn principal_extractor_rejects_anonymous_sessions() {
    let broker = Broker::builder()
        .on_send("/whoami", |p: Principal| async move {
            SendToUser::new("/queue/me", p.name)
        })
        .build()
        .unwrap();
    let mut anon = TestClient::connect(&broker).await;
    anon.subscribe("e", "/user/queue/errors").await;
    anon.send_frame(frames::send("/app/whoami", "")).await;
    assert_eq!(
        anon.expect_message().await.header("message"),
        Some("authentication required")
    );
    let mut bob = login(&broker, "bob").await;
    bob.subscribe("me", "/user/queue/me").await;
    bob.send_frame(frames::send("/app/whoami", "")).await;
    assert_eq!(body(&bob.expect_message().await), "bob");
}

#[tokio::test]
async fn subscribe_handlers_reply_to_that_subscription_only() {
    let broker = Broker::builder()
        .on_subscribe(
            "/rooms.{room}",
            |Path(room): Path<String>, s: SessionInfo| async move {
                Json(vec![format!(
                    "welcome to {room}, {}",
                    s.user().unwrap_or("guest")
                )])
            },
        )
        .build()
        .unwrap();
    let mut a = login(&broker, "alice").await;
    let mut b = login(&broker, "bob").await;
    b.subscribe("other", "/topic/rooms.lobby").await;
    a.send_frame(frames::subscribe("s1", "/app/rooms.lobby"))
        .await;
    let m = a.expect_message().await;
    assert_eq!(m.header("subscription"), Some("s1"));
    assert_eq!(m.header("destination"), Some("/app/rooms.lobby"));
    assert_eq!(body(&m), r#"["welcome to lobby, alice"]"#);
    b.expect_no_frame(QUIET).await;
    // The subscription can be removed like any other.
    a.send_frame(frames::unsubscribe("s1").with_header("receipt", "u"))
        .await;
    a.expect_receipt("u").await;
    // No subscribe handler: an error on /user/queue/errors.
    a.subscribe("e", "/user/queue/errors").await;
    a.send_frame(frames::subscribe("s2", "/app/nothing")).await;
    assert_eq!(
        body(&a.expect_message().await),
        "no subscribe handler matches \"/app/nothing\""
    );
}

#[tokio::test]
async fn a_slow_handler_blocks_neither_other_sessions_nor_its_own_deliveries() {
    type Gate = Arc<Mutex<Option<oneshot::Receiver<()>>>>;
    let (open, gate) = oneshot::channel();
    let gate: Gate = Arc::new(Mutex::new(Some(gate)));
    let broker = Broker::builder()
        .state(gate)
        .on_send("/slow", |State(gate): State<Gate>| async move {
            let rx = gate.lock().await.take().unwrap();
            rx.await.unwrap();
            SendToUser::new("/queue/r", "slow done")
        })
        .on_send("/fast", |text: String| async move {
            SendToUser::new("/queue/r", text)
        })
        .build()
        .unwrap();
    let mut slow = login(&broker, "alice").await;
    slow.subscribe("r", "/user/queue/r").await;
    slow.subscribe("t", "/topic/t").await;
    let mut fast = login(&broker, "bob").await;
    fast.subscribe("r", "/user/queue/r").await;
    slow.send_frame(frames::send("/app/slow", "")).await;
    slow.send_frame(frames::send("/app/fast", "after slow"))
        .await;
    // Another session's handlers run meanwhile.
    fast.send_frame(frames::send("/app/fast", "bob")).await;
    assert_eq!(body(&fast.expect_message().await), "bob");
    // The slow session still gets topic messages meanwhile.
    fast.send_frame(frames::send("/topic/t", "news")).await;
    assert_eq!(body(&slow.expect_message().await), "news");
    // Its own handler replies keep the order of its frames.
    open.send(()).unwrap();
    assert_eq!(body(&slow.expect_message().await), "slow done");
    assert_eq!(body(&slow.expect_message().await), "after slow");
}

#[tokio::test]
async fn custom_app_prefixes_replace_the_default() {
    let broker = Broker::builder()
        .app_prefixes(["/api", "/rpc/"])
        .on_send("/echo", |text: String| async move {
            SendToUser::new("/queue/r", text)
        })
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("r", "/user/queue/r").await;
    c.send_frame(frames::send("/api/echo", "a")).await;
    assert_eq!(body(&c.expect_message().await), "a");
    c.send_frame(frames::send("/rpc/echo", "b")).await;
    assert_eq!(body(&c.expect_message().await), "b");
    c.send_frame(frames::send("/app/echo", "c")).await;
    c.expect_error("other destinations are not supported yet")
        .await;
    for bad in ["/topic", "app", "/"] {
        let e = Broker::builder().app_prefixes([bad]).build().unwrap_err();
        assert_eq!(e.field, "app_prefixes");
    }
}

#[tokio::test]
async fn a_panicking_handler_is_reported_and_the_session_goes_on() {
    let broker = Broker::builder()
        .on_send("/boom", |text: String| async move {
            if text == "boom" {
                panic!("handler bug");
            }
            SendToUser::new("/queue/r", text)
        })
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("e", "/user/queue/errors").await;
    c.subscribe("r", "/user/queue/r").await;
    c.send_frame(frames::send("/app/boom", "boom")).await;
    let e = c.expect_message().await;
    assert_eq!(e.header("message"), Some("handler failed"));
    assert_eq!(body(&e), "the handler for \"/app/boom\" panicked");
    c.send_frame(frames::send("/app/boom", "fine")).await;
    assert_eq!(body(&c.expect_message().await), "fine");
}

#[tokio::test]
async fn more_calls_than_the_queue_holds_pause_reads_not_writes_and_all_replies_come_in_order() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let broker = Broker::builder()
        .state(gate)
        .on_send(
            "/n",
            |State(mut gate): State<tokio::sync::watch::Receiver<bool>>, text: String| async move {
                gate.wait_for(|open| *open).await.unwrap();
                SendToUser::new("/queue/r", text)
            },
        )
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("r", "/user/queue/r").await;
    c.subscribe("t", "/topic/t").await;
    // More than the 64 queued calls: the session stops reading, nothing is lost.
    for i in 0..100 {
        c.send_frame(frames::send("/app/n", i.to_string())).await;
    }
    // It still writes: deliveries reach it while its handlers are backed up.
    let mut other = TestClient::connect(&broker).await;
    other
        .send_frame(frames::send("/topic/t", "meanwhile"))
        .await;
    let m = c.expect_message().await;
    assert_eq!(
        (m.header("subscription"), body(&m)),
        (Some("t"), "meanwhile")
    );
    open.send(true).unwrap();
    for i in 0..100 {
        assert_eq!(body(&c.expect_message().await), i.to_string());
    }
}

#[tokio::test]
async fn a_chunk_with_more_calls_than_the_queue_holds_is_decoded_as_the_queue_drains() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let broker = Broker::builder()
        .state(gate)
        .on_send(
            "/n",
            |State(mut gate): State<tokio::sync::watch::Receiver<bool>>, text: String| async move {
                gate.wait_for(|open| *open).await.unwrap();
                SendToUser::new("/queue/r", text)
            },
        )
        .build()
        .unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("r", "/user/queue/r").await;
    c.subscribe("t", "/topic/t").await;
    let mut chunk = bytes::BytesMut::new();
    for i in 0..200 {
        let frame = frames::send("/app/n", i.to_string());
        stompbox_codec::encode(&frame, stompbox_codec::Version::V1_2, &mut chunk);
    }
    c.send_bytes(chunk.freeze()).await;
    let mut other = TestClient::connect(&broker).await;
    other
        .send_frame(frames::send("/topic/t", "meanwhile"))
        .await;
    assert_eq!(body(&c.expect_message().await), "meanwhile");
    open.send(true).unwrap();
    for i in 0..200 {
        assert_eq!(body(&c.expect_message().await), i.to_string());
    }
}
