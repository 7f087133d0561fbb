//! Embedder hooks: interceptors on inbound frames and lifecycle events.

use std::time::Duration;

use futures::StreamExt;
use stompbox_broker::{Broker, CloseReason, Event, FrameRejected, SessionInfo};
use stompbox_codec::{Command, Frame};
use stompbox_test_support::{TestClient, frames};

const WAIT: Duration = Duration::from_secs(5);

async fn next(events: &mut (impl futures::Stream<Item = Event> + Unpin)) -> Event {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
}

#[tokio::test]
async fn interceptors_modify_and_reject_inbound_frames() {
    let broker = Broker::builder()
        .interceptor(|frame: &mut Frame, session: &SessionInfo| {
            if frame.command == Command::Send {
                let who = session.user().unwrap_or("anonymous").to_owned();
                frame.headers.set("x-sender", who);
            }
            Ok(())
        })
        .interceptor(
            |frame: &mut Frame, _: &SessionInfo| match frame.header("destination") {
                Some(d) if d.starts_with("/topic/admin") => Err(FrameRejected::new(
                    "forbidden",
                    format!("{d} is for administrators"),
                )),
                _ => Ok(()),
            },
        )
        .build()
        .unwrap();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/a").await;
    let (mut alice, _) =
        TestClient::connect_with(&broker, frames::connect().with_header("login", "alice")).await;
    alice.send_frame(frames::send("/topic/a", "hi")).await;
    let m = sub.expect_message().await;
    assert_eq!(m.header("x-sender"), Some("alice"));
    alice.send_frame(frames::send("/topic/admin.x", "hi")).await;
    let e = alice.expect_error("forbidden").await;
    assert_eq!(&e.body[..], b"/topic/admin.x is for administrators");
    assert_eq!(
        alice.expect_closed().await,
        CloseReason::ProtocolError("forbidden".into())
    );
}

#[tokio::test]
async fn interceptors_see_connect_frames() {
    let broker = Broker::builder()
        .interceptor(|frame: &mut Frame, _: &SessionInfo| {
            if frame.command == Command::Connect && frame.header("x-client") != Some("ok") {
                return Err(FrameRejected::new("unknown client", "send x-client: ok"));
            }
            Ok(())
        })
        .build()
        .unwrap();
    let mut c = TestClient::start(&broker);
    c.send_frame(frames::connect()).await;
    c.expect_error("unknown client").await;
    TestClient::connect_with(&broker, frames::connect().with_header("x-client", "ok")).await;
}

#[tokio::test]
async fn lifecycle_events_stream() {
    let broker = Broker::new();
    let mut events = broker.events();
    let (c, connected) =
        TestClient::connect_with(&broker, frames::connect().with_header("login", "alice")).await;
    let mut c = c;
    let id = connected.header("session").unwrap().to_owned();
    let session = match next(&mut events).await {
        Event::Connected { session } => session,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (session.id.as_str(), session.user()),
        (id.as_str(), Some("alice"))
    );
    c.subscribe("s", "/user/queue/n").await;
    match next(&mut events).await {
        Event::Subscribed {
            session: s,
            subscription,
            destination,
        } => {
            assert_eq!(s, session);
            assert_eq!(
                (subscription.as_str(), destination.as_str()),
                ("s", "/user/queue/n")
            );
        }
        other => panic!("{other:?}"),
    }
    c.send_frame(frames::unsubscribe("s")).await;
    match next(&mut events).await {
        Event::Unsubscribed { subscription, .. } => assert_eq!(subscription, "s"),
        other => panic!("{other:?}"),
    }
    c.disconnect().await;
    assert_eq!(
        next(&mut events).await,
        Event::Disconnected {
            session: session.clone(),
            reason: CloseReason::Disconnect
        }
    );
    // A session that breaks a rule is disconnected with that reason.
    let mut c = TestClient::connect(&broker).await;
    next(&mut events).await;
    c.send_frame(Frame::new(Command::Ack)).await;
    c.expect_error("missing id header").await;
    match next(&mut events).await {
        Event::Disconnected { session, reason } => {
            assert_eq!(session.principal, None);
            assert_eq!(
                reason,
                CloseReason::ProtocolError("missing id header".into())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_slow_event_listener_lags_instead_of_blocking() {
    let broker = Broker::new();
    let mut events = broker.events();
    let mut c = TestClient::connect(&broker).await;
    let n = stompbox_broker::EVENT_CAPACITY + 10;
    for i in 0..n {
        c.send_frame(frames::subscribe(&i.to_string(), "/topic/x"))
            .await;
        c.send_frame(frames::unsubscribe(&i.to_string())).await;
    }
    c.send_frame(frames::send("/topic/y", "").with_header("receipt", "done"))
        .await;
    c.expect_receipt("done").await;
    match next(&mut events).await {
        Event::Lagged { missed } => assert!(missed > 0),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        next(&mut events).await,
        Event::Subscribed { .. } | Event::Unsubscribed { .. }
    ));
}
