//! Unit tests of the session state machine: frames in, actions out, no I/O.

use stompbox_codec::{Command, Frame, Version};

use super::{Action, Session};
use crate::{AuthError, Config, Principal};

fn frame(command: Command, headers: &[(&str, &str)]) -> Frame {
    headers
        .iter()
        .fold(Frame::new(command), |f, (n, v)| f.with_header(*n, *v))
}

/// A compact view of actions, for assertions.
fn summary(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Reply(f) => match f.command {
                Command::Error => format!("ERROR {}", f.header("message").unwrap()),
                Command::Receipt => format!("RECEIPT {}", f.header("receipt-id").unwrap()),
                c => c.to_string(),
            },
            Action::Authenticate(_) => "authenticate".into(),
            Action::Open { version, .. } => format!("open {version}"),
            Action::Subscribe { id, subscription } => match &subscription.queue {
                None => format!("subscribe {id} {}", subscription.destination),
                Some(_) => format!("subscribe {id} {} durable", subscription.destination),
            },
            Action::Unsubscribe { id, .. } => format!("unsubscribe {id}"),
            Action::Publish { destination, .. } => format!("publish {destination}"),
            Action::Settle {
                subscription,
                tags,
                outcome,
                ..
            } => format!("{outcome:?} {subscription} {tags:?}"),
            Action::Handle { destination, .. } => format!("handle {destination}"),
            Action::Close(reason) => format!("close {reason:?}"),
        })
        .collect()
}

fn step(session: &mut Session<'_>, f: Frame) -> Vec<String> {
    let mut out = Vec::new();
    session.on_frame(f, None, &mut out);
    summary(&out)
}

fn connected(config: &Config) -> Session<'_> {
    let mut s = Session::new("s1".into(), config);
    assert_eq!(
        step(
            &mut s,
            frame(Command::Connect, &[("accept-version", "1.1,1.2")])
        ),
        ["authenticate"]
    );
    let mut out = Vec::new();
    s.on_authenticated(Ok(Some(Principal::new("ann"))), &mut out);
    assert_eq!(summary(&out), ["open 1.2", "CONNECTED"]);
    let Action::Reply(connected) = &out[1] else {
        unreachable!()
    };
    assert_eq!(connected.header("session"), Some("s1"));
    assert_eq!(connected.header("version"), Some("1.2"));
    assert!(s.is_connected());
    s
}

#[test]
fn effects_come_before_their_receipts() {
    let config = Config::default();
    let mut s = connected(&config);
    assert_eq!(
        step(
            &mut s,
            frame(
                Command::Subscribe,
                &[
                    ("id", "0"),
                    ("destination", "/topic/a.*"),
                    ("receipt", "r1")
                ]
            )
        ),
        ["subscribe 0 /topic/a.*", "RECEIPT r1"]
    );
    assert_eq!(
        step(
            &mut s,
            frame(
                Command::Send,
                &[("destination", "/topic/a.b"), ("receipt", "r2")]
            )
        ),
        ["publish /topic/a.b", "RECEIPT r2"]
    );
    assert_eq!(
        step(
            &mut s,
            frame(Command::Unsubscribe, &[("id", "0"), ("receipt", "r3")])
        ),
        ["unsubscribe 0", "RECEIPT r3"]
    );
    assert_eq!(
        step(&mut s, frame(Command::Disconnect, &[("receipt", "bye")])),
        ["RECEIPT bye", "close Disconnect"]
    );
    assert!(s.is_closed());
    assert!(step(&mut s, frame(Command::Send, &[("destination", "/topic/a")])).is_empty());
}

#[test]
fn errors_carry_the_receipt_and_close() {
    let config = Config::default();
    let mut s = Session::new("s".into(), &config);
    assert_eq!(
        step(&mut s, frame(Command::Send, &[("receipt", "7")])),
        [
            "ERROR not connected",
            "close ProtocolError(\"not connected\")"
        ]
    );
    let mut s = connected(&config);
    let mut out = Vec::new();
    s.on_frame(
        frame(
            Command::Subscribe,
            &[
                ("destination", "/exchange/q"),
                ("id", "1"),
                ("receipt", "9"),
            ],
        ),
        None,
        &mut out,
    );
    let Action::Reply(error) = &out[0] else {
        unreachable!()
    };
    assert_eq!(error.header("receipt-id"), Some("9"));
    assert_eq!(
        error.header("message"),
        Some("other destinations are not supported yet")
    );
    assert!(s.is_closed());
}

#[test]
fn subscriptions_survive_a_failure_for_cleanup() {
    let config = Config::default();
    let mut s = connected(&config);
    step(
        &mut s,
        frame(
            Command::Subscribe,
            &[("id", "a"), ("destination", "/topic/x")],
        ),
    );
    assert_eq!(
        step(&mut s, frame(Command::Connect, &[])),
        [
            "ERROR already connected",
            "close ProtocolError(\"already connected\")"
        ]
    );
    let subs: Vec<_> = s
        .subscriptions()
        .map(|(id, s)| (id.to_string(), s.destination.to_string()))
        .collect();
    assert_eq!(subs, [("a".to_owned(), "/topic/x".to_owned())]);
}

#[test]
fn refused_authentication() {
    let config = Config::default();
    let mut s = Session::new("s".into(), &config);
    step(&mut s, frame(Command::Stomp, &[("accept-version", "1.2")]));
    let mut out = Vec::new();
    s.on_authenticated(Err(AuthError::new("nope")), &mut out);
    assert_eq!(summary(&out), ["ERROR nope", "close AuthenticationFailed"]);
}

#[test]
fn version_and_heart_beat_negotiation() {
    let config = Config::default();
    let mut s = Session::new("s".into(), &config);
    step(
        &mut s,
        frame(Command::Connect, &[("heart-beat", "5000,20000")]),
    );
    let mut out = Vec::new();
    s.on_authenticated(Ok(None), &mut out);
    let Action::Open {
        version, heartbeat, ..
    } = &out[0]
    else {
        unreachable!()
    };
    // No accept-version: 1.0, which has no heart-beats.
    assert_eq!(*version, Version::V1_0);
    assert!(heartbeat.send.is_zero() && heartbeat.receive.is_zero());

    let mut s = Session::new("s".into(), &config);
    step(
        &mut s,
        frame(
            Command::Connect,
            &[("accept-version", "1.1"), ("heart-beat", "5000,20000")],
        ),
    );
    let mut out = Vec::new();
    s.on_authenticated(Ok(None), &mut out);
    let Action::Reply(connected) = &out[1] else {
        unreachable!()
    };
    // The client's own intervals: beats every 20 s to it, one expected every 5 s from it.
    assert_eq!(connected.header("heart-beat"), Some("20000,5000"));
    assert_eq!(connected.header("version"), Some("1.1"));
}

#[test]
fn subscription_limits_and_duplicates() {
    let config = Config {
        max_subscriptions_per_session: 1,
        ..Config::default()
    };
    let mut s = connected(&config);
    let sub = |id: &str| {
        frame(
            Command::Subscribe,
            &[("id", id), ("destination", "/topic/t")],
        )
    };
    assert_eq!(step(&mut s, sub("x")), ["subscribe x /topic/t"]);
    assert_eq!(step(&mut s, sub("x"))[0], "ERROR duplicate subscription id");
    let mut s = connected(&config);
    step(&mut s, sub("x"));
    assert_eq!(
        step(&mut s, sub("y"))[0],
        "ERROR too many subscriptions (max 1)"
    );
}

fn connected_at<'a>(config: &'a Config, accept_version: &str) -> Session<'a> {
    let mut s = Session::new("s".into(), config);
    step(
        &mut s,
        frame(Command::Connect, &[("accept-version", accept_version)]),
    );
    s.on_authenticated(Ok(None), &mut Vec::new());
    assert!(s.is_connected());
    s
}

#[test]
fn held_frames_take_effect_at_commit_before_its_receipt() {
    let config = Config::default();
    let mut s = connected(&config);
    let sub = [
        ("id", "q"),
        ("destination", "/queue/a"),
        ("ack", "client-individual"),
    ];
    assert_eq!(
        step(&mut s, frame(Command::Subscribe, &sub)),
        ["subscribe q /queue/a"]
    );
    s.on_delivered("q", 7, 70);
    assert_eq!(
        step(
            &mut s,
            frame(Command::Begin, &[("transaction", "t"), ("receipt", "b")])
        ),
        ["RECEIPT b"]
    );
    let held = [
        ("destination", "/queue/a"),
        ("transaction", "t"),
        ("receipt", "s"),
    ];
    assert_eq!(step(&mut s, frame(Command::Send, &held)), ["RECEIPT s"]);
    assert_eq!(
        step(
            &mut s,
            frame(Command::Ack, &[("id", "7"), ("transaction", "t")])
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        step(
            &mut s,
            frame(Command::Commit, &[("transaction", "t"), ("receipt", "c")])
        ),
        ["publish /queue/a", "Ack q [7]", "RECEIPT c"]
    );
    // Aborted: nothing happens, and the id is closed.
    step(&mut s, frame(Command::Begin, &[("transaction", "u")]));
    step(
        &mut s,
        frame(
            Command::Send,
            &[("destination", "/queue/a"), ("transaction", "u")],
        ),
    );
    assert!(step(&mut s, frame(Command::Abort, &[("transaction", "u")])).is_empty());
    assert_eq!(
        step(&mut s, frame(Command::Commit, &[("transaction", "u")])),
        [
            "ERROR unknown transaction id",
            "close ProtocolError(\"unknown transaction id\")"
        ]
    );
}

#[test]
fn acks_name_deliveries_per_version_and_client_mode_is_cumulative() {
    let config = Config::default();
    for (version, key) in [("1.2", "id"), ("1.1", "message-id"), ("1.0", "message-id")] {
        let mut s = connected_at(&config, version);
        let sub = [("id", "q"), ("destination", "/queue/a"), ("ack", "client")];
        step(&mut s, frame(Command::Subscribe, &sub));
        for (tag, message_id) in [(1, 10), (2, 20), (3, 30)] {
            s.on_delivered("q", tag, message_id);
        }
        let named = if key == "id" { "2" } else { "20" };
        assert_eq!(
            step(&mut s, frame(Command::Nack, &[(key, named)])),
            ["Nack q [1, 2]"],
            "{version}"
        );
        assert_eq!(
            step(&mut s, frame(Command::Ack, &[(key, named)])),
            [
                "ERROR unknown ack id",
                "close ProtocolError(\"unknown ack id\")"
            ],
            "{version}"
        );
    }
}

#[test]
fn topic_acks_are_validated_but_settle_nothing() {
    let config = Config::default();
    let mut s = connected(&config);
    let sub = [("id", "t"), ("destination", "/topic/a"), ("ack", "client")];
    step(&mut s, frame(Command::Subscribe, &sub));
    s.on_delivered("t", 5, 50);
    assert_eq!(
        step(
            &mut s,
            frame(Command::Ack, &[("id", "5"), ("receipt", "r")])
        ),
        ["RECEIPT r"]
    );
}
