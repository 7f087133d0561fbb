//! CONNECT: version negotiation, authentication, ordering rules, connection limits.

use std::time::Duration;

use futures::future::BoxFuture;
use stompbox_broker::{
    AuthError, Authenticator, Broker, CloseReason, Config, ConnectRequest, Principal,
};
use stompbox_codec::{Command, Frame};
use stompbox_test_support::{TestClient, frames};

async fn connected_version(connect: Frame) -> String {
    let broker = Broker::new();
    let (_client, connected) = TestClient::connect_with(&broker, connect).await;
    connected.header("version").unwrap().to_owned()
}

#[tokio::test]
async fn negotiates_the_highest_common_version() {
    assert_eq!(
        connected_version(frames::connect_with_versions("1.2")).await,
        "1.2"
    );
    assert_eq!(
        connected_version(frames::connect_with_versions("1.1")).await,
        "1.1"
    );
    assert_eq!(
        connected_version(frames::connect_with_versions("1.0,1.1")).await,
        "1.1"
    );
    assert_eq!(
        connected_version(frames::connect_with_versions("1.1,1.0,1.2")).await,
        "1.2"
    );
    assert_eq!(
        connected_version(frames::connect_with_versions("1.0,2.0")).await,
        "1.0"
    );
    // No accept-version at all means STOMP 1.0.
    assert_eq!(connected_version(frames::connect_1_0()).await, "1.0");
}

#[tokio::test]
async fn stomp_command_is_accepted_like_connect() {
    let broker = Broker::new();
    let mut stomp = frames::connect();
    stomp.command = Command::Stomp;
    let (_c, connected) = TestClient::connect_with(&broker, stomp).await;
    assert_eq!(connected.header("version"), Some("1.2"));
}

#[tokio::test]
async fn connected_carries_server_session_and_heart_beat() {
    let config = Config {
        server_name: "test-server/1".into(),
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let (_a, a) = TestClient::connect_with(&broker, frames::connect()).await;
    let (_b, b) = TestClient::connect_with(&broker, frames::connect()).await;
    assert_eq!(a.header("server"), Some("test-server/1"));
    assert_eq!(a.header("heart-beat"), Some("0,0"));
    let (sa, sb) = (a.header("session").unwrap(), b.header("session").unwrap());
    assert!(!sa.is_empty());
    assert_ne!(sa, sb, "session ids are unique");
}

#[tokio::test]
async fn no_supported_version_is_an_error_listing_ours() {
    let broker = Broker::new();
    let mut client = TestClient::start(&broker);
    client
        .send_frame(frames::connect_with_versions("2.0,3.1"))
        .await;
    let error = client.expect_error("unsupported protocol version").await;
    assert_eq!(error.header("version"), Some("1.0,1.1,1.2"));
    assert!(
        std::str::from_utf8(&error.body)
            .unwrap()
            .contains("2.0,3.1")
    );
    assert!(matches!(
        client.expect_closed().await,
        CloseReason::ProtocolError(m) if m == "unsupported protocol version"
    ));
}

struct Passwords;

impl Authenticator for Passwords {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let result = match (request.login, request.passcode, request.host) {
            (Some("alice"), Some("secret"), Some("localhost")) => Ok(Some(Principal::new("alice"))),
            _ => Err(AuthError::new("bad credentials")),
        };
        Box::pin(async move { result })
    }
}

#[tokio::test]
async fn authenticator_sees_login_passcode_host() {
    let broker = Broker::builder().authenticator(Passwords).build().unwrap();
    let connect = frames::connect()
        .with_header("login", "alice")
        .with_header("passcode", "secret");
    let (client, _) = TestClient::connect_with(&broker, connect).await;
    assert_eq!(client.disconnect().await, CloseReason::Disconnect);
}

#[tokio::test]
async fn refused_authentication_is_an_error_and_a_close() {
    let broker = Broker::builder().authenticator(Passwords).build().unwrap();
    let mut client = TestClient::start(&broker);
    client
        .send_frame(
            frames::connect()
                .with_header("login", "alice")
                .with_header("passcode", "wrong"),
        )
        .await;
    client.expect_error("bad credentials").await;
    assert_eq!(
        client.expect_closed().await,
        CloseReason::AuthenticationFailed
    );
}

#[tokio::test]
async fn any_frame_before_connect_is_an_error() {
    let broker = Broker::new();
    for frame in [
        frames::send("/topic/a", "x"),
        frames::subscribe("0", "/topic/a"),
        Frame::new(Command::Disconnect),
    ] {
        let mut client = TestClient::start(&broker);
        let command = frame.command;
        client.send_frame(frame.with_header("receipt", "r1")).await;
        let error = client.expect_error("not connected").await;
        assert_eq!(error.header("receipt-id"), Some("r1"));
        let body = String::from_utf8(error.body.to_vec()).unwrap();
        assert!(body.contains(command.as_str()), "{body}");
        assert!(matches!(
            client.expect_closed().await,
            CloseReason::ProtocolError(_)
        ));
    }
}

#[tokio::test]
async fn a_second_connect_is_an_error() {
    let broker = Broker::new();
    let mut client = TestClient::connect(&broker).await;
    client.send_frame(frames::connect()).await;
    client.expect_error("already connected").await;
    assert!(matches!(
        client.expect_closed().await,
        CloseReason::ProtocolError(_)
    ));
}

#[tokio::test]
async fn server_frames_from_a_client_are_errors() {
    let broker = Broker::new();
    let mut client = TestClient::connect(&broker).await;
    client.send_frame(Frame::new(Command::Message)).await;
    client.expect_error("unexpected MESSAGE frame").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn a_malformed_heart_beat_header_is_an_error() {
    let broker = Broker::new();
    let mut client = TestClient::start(&broker);
    let mut connect = frames::connect_with_versions("1.2");
    connect.headers.set("heart-beat", "soon");
    client.send_frame(connect).await;
    client.expect_error("invalid heart-beat header").await;
    client.expect_closed().await;
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_closes_a_silent_connection() {
    let config = Config {
        connect_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut client = TestClient::start(&broker);
    let started = tokio::time::Instant::now();
    let error = client.expect_error("connect timeout").await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(
        std::str::from_utf8(&error.body)
            .unwrap()
            .contains("3000 ms")
    );
    assert_eq!(client.expect_closed().await, CloseReason::ConnectTimeout);
}

#[tokio::test(start_paused = true)]
async fn heart_beats_before_connect_do_not_extend_the_connect_timeout() {
    let config = Config {
        connect_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut client = TestClient::start(&broker);
    let started = tokio::time::Instant::now();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        client.send_bytes(&b"\n"[..]).await;
        client.ping().await;
    }
    client.expect_error("connect timeout").await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test]
async fn max_connections_refuses_the_next_one() {
    let config = Config {
        max_connections: 2,
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let a = TestClient::connect(&broker).await;
    let _b = TestClient::connect(&broker).await;
    assert_eq!(broker.stats().connections, 2);
    let mut c = TestClient::start(&broker);
    c.expect_error("too many connections").await;
    assert_eq!(c.expect_closed().await, CloseReason::TooManyConnections);
    assert_eq!(broker.stats().refused_connections, 1);
    // A slot frees up when a session ends.
    assert_eq!(a.disconnect().await, CloseReason::Disconnect);
    let d = TestClient::connect(&broker).await;
    assert_eq!(d.disconnect().await, CloseReason::Disconnect);
}

#[tokio::test]
async fn frames_pipelined_after_connect_in_one_chunk_use_the_negotiated_version() {
    let broker = Broker::new();
    let mut c = TestClient::start(&broker);
    // 1.1 has no `\r` escape: the SEND after CONNECT must be decoded with 1.1 rules.
    c.send_bytes(
        &b"CONNECT\naccept-version:1.1\nheart-beat:0,0\n\n\0\
           SUBSCRIBE\nid:0\ndestination:/topic/p\nreceipt:s\n\n\0\
           SEND\ndestination:/topic/p\nk:a\\rb\n\nx\0"[..],
    )
    .await;
    let connected = c.expect_frame(Command::Connected).await;
    assert_eq!(connected.header("version"), Some("1.1"));
    c.expect_receipt("s").await;
    c.expect_error(r#"undefined escape sequence "\\r" in header"#)
        .await;
}
