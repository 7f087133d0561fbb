//! Identity and permissions over real sockets: the loopback-only default (from a non-loopback
//! address of this machine), the users file, JWT through each carrier, the Origin allow-list,
//! permission rules with `{user}`, bad logins held off per address, and reload.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{TcpClient, TestServer, WsClient, frames, users_file, within};
use jsonwebtoken::{EncodingKey, Header, encode};
use stompbox_auth::hash_password;
use stompbox_broker::{Access, LOOPBACK_ONLY_MESSAGE, PermissionRule};
use stompbox_codec::Frame;
use stompbox_server::{AnonymousAccess, ServerConfig};
use tokio::net::TcpStream;

const SECRET: &str = "a test secret of enough length for HS256";
const BAD_CREDENTIALS: &str = "bad credentials: login or passcode refused";

fn body(frame: &Frame) -> &str {
    std::str::from_utf8(&frame.body).unwrap()
}

/// An address of this machine that is not loopback: the source the kernel picks towards a
/// TEST-NET address (a UDP `connect` sends nothing).
fn non_loopback_ip() -> IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("this machine has a non-loopback IPv4 route (the test needs one)");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip
}

fn connect_as(login: &str, passcode: &str) -> Frame {
    frames::connect()
        .with_header("login", login)
        .with_header("passcode", passcode)
}

#[tokio::test]
async fn with_nothing_configured_only_local_clients_are_admitted() {
    let server = TestServer::start(|c| {
        c.tcp.listen = "0.0.0.0:0".parse().unwrap();
    })
    .await;
    let port = server.tcp_addr.port();
    let ip = non_loopback_ip();
    let mut remote = TcpClient::open_from(ip, SocketAddr::new(ip, port)).await;
    remote.send_frame(connect_as("alice", "x")).await;
    let e = remote.expect_error(LOOPBACK_ONLY_MESSAGE).await;
    assert!(e.header("message").unwrap().contains("docs/security.md"));
    assert!(remote.next_item().await.is_none(), "closed after the ERROR");

    let mut local = TcpClient::open(SocketAddr::from(([127, 0, 0, 1], port))).await;
    local.handshake(connect_as("alice", "anything")).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn anonymous_anywhere_admits_remote_clients() {
    let server = TestServer::start(|c| {
        c.tcp.listen = "0.0.0.0:0".parse().unwrap();
        c.auth.anonymous = AnonymousAccess::Anywhere;
    })
    .await;
    let ip = non_loopback_ip();
    let addr = SocketAddr::new(ip, server.tcp_addr.port());
    let mut remote = TcpClient::open_from(ip, addr).await;
    remote.handshake(frames::connect()).await;
    server.shutdown().await.unwrap();
}

fn chat_permissions(config: &mut ServerConfig) {
    use Access::{Send, Subscribe};
    config.permissions = vec![
        PermissionRule::allow(&[Send, Subscribe], ["#"]).for_roles(["admin"]),
        PermissionRule::allow(&[Send, Subscribe], ["/topic/chat.*"]).for_roles(["user"]),
        PermissionRule::allow(&[Send], ["/user/{user}/#"]).for_roles(["user"]),
    ];
}

#[tokio::test]
async fn users_file_passwords_roles_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = users_file(&dir);
    let server = TestServer::start(|c| {
        c.auth.users_file = Some(path.clone());
        chat_permissions(c);
    })
    .await;
    let addr = server.tcp_addr;

    // Wrong password and unknown login: the same answer.
    for (login, passcode) in [("alice", "wrong"), ("mallory", "alice-pw")] {
        let mut c = TcpClient::open(addr).await;
        c.send_frame(connect_as(login, passcode)).await;
        c.expect_error(BAD_CREDENTIALS).await;
        assert!(c.next_item().await.is_none());
    }
    let mut nobody = TcpClient::open(addr).await;
    nobody.send_frame(frames::connect()).await;
    let e = nobody.expect_frame(stompbox_codec::Command::Error).await;
    assert!(e.header("message").unwrap().contains("login"), "{e:?}");

    let mut alice = TcpClient::open(addr).await;
    let connected = alice.handshake(connect_as("alice", "alice-pw")).await;
    assert_eq!(connected.header("user-name"), Some("alice"), "who she is");
    let mut root = WsClient::open(&server.ws_url).await;
    root.handshake(connect_as("root", "root-pw")).await;
    root.subscribe("all", "/topic/#").await;
    alice.subscribe("me", "/user/queue/inbox").await;

    alice
        .send_with_receipt(frames::send("/topic/chat.lobby", "hello"), "r1")
        .await;
    assert_eq!(body(&root.expect_message().await), "hello");
    // To her own user destination, by {user}.
    alice
        .send_frame(frames::send("/user/alice/queue/inbox", "note"))
        .await;
    assert_eq!(body(&alice.expect_message().await), "note");
    // Not to root's, and not to a topic outside the chat.
    alice
        .send_frame(frames::send("/user/root/queue/inbox", "x"))
        .await;
    let e = alice
        .expect_error("access refused: /user/root/queue/inbox")
        .await;
    assert!(body(&e).contains("user \"alice\""), "{e:?}");
    assert!(alice.next_item().await.is_none());

    let stats = server.broker.stats();
    assert_eq!(stats.failed_logins, 3);
    server.shutdown().await.unwrap();
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(sub: &str, iss: &str, exp: u64, secret: &str) -> String {
    let claims = serde_json::json!({
        "sub": sub, "iss": iss, "aud": "stomp", "exp": exp, "roles": ["user"],
    });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn good_token(sub: &str) -> String {
    token(sub, "https://login.example", now() + 600, SECRET)
}

async fn jwt_server() -> TestServer {
    TestServer::start(|c| {
        let jwt = stompbox_auth::JwtConfig {
            secret: Some(SECRET.into()),
            issuer: Some("https://login.example".into()),
            audience: Some("stomp".into()),
            cookie: Some("stomp_token".into()),
            leeway: 0,
            ..Default::default()
        };
        c.auth.jwt = Some(jwt);
        c.websocket.allowed_origins = vec!["https://app.example".into()];
        // Every refusal below comes from 127.0.0.1: more than the failed-login guard's default.
        c.broker.login.max_failures = 100;
        chat_permissions(c);
    })
    .await
}

/// Subscribes to its own `/user/queue/me` and checks a message sent to `user` arrives: the
/// session is `user`'s.
async fn assert_is(client: &mut WsClient, server: &TestServer, user: &str) {
    client.subscribe("me", "/user/queue/me").await;
    let sent = server
        .broker
        .send_to_user(user, "/queue/me", "for you")
        .unwrap();
    assert_eq!(sent, 1);
    assert_eq!(body(&client.expect_message().await), "for you");
}

async fn ws_with(url: &str, headers: &[(&'static str, &str)]) -> WsClient {
    let stream = within("tcp connect", TcpStream::connect(url_addr(url)))
        .await
        .unwrap();
    WsClient::open_with(stream, url, headers).await
}

fn url_addr(url: &str) -> String {
    let rest = url.trim_start_matches("ws://");
    rest[..rest.find('/').unwrap()].to_owned()
}

#[tokio::test]
async fn a_jwt_is_accepted_through_each_carrier() {
    let server = jwt_server().await;
    let url = &server.ws_url;

    // CONNECT's passcode (RabbitMQ's OAuth 2 convention).
    let mut c = WsClient::open(url).await;
    c.handshake(connect_as("", &good_token("ann"))).await;
    assert_is(&mut c, &server, "ann").await;

    // CONNECT's Authorization header, over TCP.
    let mut c = TcpClient::open(server.tcp_addr).await;
    let bearer = format!("Bearer {}", good_token("bea"));
    c.handshake(frames::connect().with_header("Authorization", bearer.as_str()))
        .await;
    c.subscribe("me", "/user/queue/me").await;
    assert_eq!(
        server.broker.send_to_user("bea", "/queue/me", "x").unwrap(),
        1
    );

    // The upgrade request's Authorization header.
    let bearer = format!("Bearer {}", good_token("cy"));
    let mut c = ws_with(url, &[("authorization", &bearer)]).await;
    c.handshake(frames::connect()).await;
    assert_is(&mut c, &server, "cy").await;

    // The query parameter (browsers cannot set headers on a WebSocket).
    let with_query = format!("{url}?access_token={}", good_token("dee"));
    let mut c = ws_with(&with_query, &[]).await;
    c.handshake(frames::connect()).await;
    assert_is(&mut c, &server, "dee").await;

    // The cookie, from an allowed origin.
    let cookie = format!("theme=dark; stomp_token={}", good_token("eve"));
    let mut c = ws_with(
        url,
        &[("cookie", &cookie), ("origin", "https://app.example")],
    )
    .await;
    c.handshake(frames::connect()).await;
    assert_is(&mut c, &server, "eve").await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn expired_forged_and_foreign_tokens_are_refused_through_every_carrier() {
    let server = jwt_server().await;
    let cases = [
        (
            token("ann", "https://login.example", now() - 60, SECRET),
            "token expired",
        ),
        (
            token("ann", "https://evil.example", now() + 600, SECRET),
            "invalid token",
        ),
        (
            token(
                "ann",
                "https://login.example",
                now() + 600,
                "another secret entirely!!",
            ),
            "invalid token",
        ),
    ];
    // Through every carrier: CONNECT's passcode and Authorization header, the upgrade's
    // Authorization header, query parameter and cookie.
    let url = &server.ws_url;
    for (token, message) in cases {
        let bearer = format!("Bearer {token}");
        let with_query = format!("{url}?access_token={token}");
        let cookie = format!("stomp_token={token}");
        let mut carried = [
            (ws_with(url, &[]).await, connect_as("ann", &token)),
            (
                ws_with(url, &[]).await,
                frames::connect().with_header("Authorization", bearer.as_str()),
            ),
            (
                ws_with(url, &[("authorization", &bearer)]).await,
                frames::connect(),
            ),
            (ws_with(&with_query, &[]).await, frames::connect()),
            (
                ws_with(
                    url,
                    &[("cookie", &cookie), ("origin", "https://app.example")],
                )
                .await,
                frames::connect(),
            ),
        ];
        for (carrier, (c, connect)) in carried.iter_mut().enumerate() {
            c.send_frame(connect.clone()).await;
            let e = c.expect_frame(stompbox_codec::Command::Error).await;
            let got = e.header("message").unwrap();
            assert!(
                got.starts_with(message),
                "carrier {carrier}: {got:?} for {message:?}"
            );
            assert!(c.next_item().await.is_none());
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_session_is_closed_when_its_token_expires() {
    let server = jwt_server().await;
    let short = token("ann", "https://login.example", now() + 2, SECRET);
    let mut c = WsClient::open(&server.ws_url).await;
    c.handshake(connect_as("", &short)).await;
    c.subscribe("me", "/user/queue/me").await;
    c.expect_error("token expired").await;
    assert!(c.next_item().await.is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_handshake_from_a_refused_origin_gets_403() {
    let server = jwt_server().await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.ws_url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let stream = TcpStream::connect(server.ws_addr).await.unwrap();
    let refused = within(
        "handshake",
        tokio_tungstenite::client_async(request, stream),
    )
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(
                body.contains("origin not allowed: https://evil.example"),
                "{body}"
            );
        }
        other => panic!("expected HTTP 403, got {other:?}"),
    }
    // Allowed origins, and clients that send none (mobile apps), are served.
    let mut c = ws_with(&server.ws_url, &[("origin", "https://app.example")]).await;
    c.handshake(connect_as("", &good_token("ann"))).await;
    server.shutdown().await.unwrap();
}

/// A flood of bad logins from one address: after `max_failures` of them the address is refused
/// without its logins being checked (so no argon2 work), while another address logs in.
#[tokio::test]
async fn thousands_of_bad_logins_from_one_address_do_not_reach_the_authenticator() {
    const FLOOD: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let path = users_file(&dir);
    let server = TestServer::start(|c| {
        c.auth.users_file = Some(path.clone());
        c.broker.login.max_failures = 5;
    })
    .await;
    let addr = server.tcp_addr;
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let flood = async {
        let mut throttled = 0;
        for _ in 0..FLOOD / 50 {
            let batch = (0..50).map(|_| async {
                let mut c = TcpClient::open_from(attacker, addr).await;
                c.send_frame(connect_as("alice", "guess")).await;
                let e = c.expect_frame(stompbox_codec::Command::Error).await;
                e.header("message") == Some("too many failed logins")
            });
            throttled += futures::future::join_all(batch)
                .await
                .into_iter()
                .filter(|t| *t)
                .count();
        }
        throttled
    };
    let good = async {
        for _ in 0..5 {
            let mut c = TcpClient::open(addr).await;
            c.handshake(connect_as("alice", "alice-pw")).await;
        }
    };
    let (throttled, ()) = tokio::join!(flood, good);
    let stats = server.broker.stats();
    assert_eq!(stats.failed_logins, 5, "{stats:?}");
    assert_eq!(stats.throttled_logins as usize, FLOOD - 5, "{stats:?}");
    assert_eq!(throttled, FLOOD - 5);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reload_swaps_users_and_permissions_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = users_file(&dir);
    let mut config = ServerConfig::default();
    // In-process servers of a test run must not share (or create) ./stompbox-data.
    config.store.enabled = false;
    config.websocket.enabled = false;
    config.tcp.listen = "127.0.0.1:0".parse().unwrap();
    config.auth.users_file = Some(path.clone());
    chat_permissions(&mut config);
    let server = stompbox_server::Server::bind(config.clone()).await.unwrap();
    let addr = server.local_tcp_addr().unwrap();
    let reloader = server.reloader();
    let broker = server.broker().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let mut alice = TcpClient::open(addr).await;
    alice.handshake(connect_as("alice", "alice-pw")).await;
    alice.subscribe("c", "/topic/chat.lobby").await;

    // Bob joins the users file; chat becomes subscribe-only.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[user]]\nlogin = \"bob\"\npassword_hash = \"{}\"\nroles = [\"user\"]\n",
        hash_password("bob-pw")
    ));
    std::fs::write(&path, text).unwrap();
    config.permissions =
        vec![PermissionRule::allow(&[Access::Subscribe], ["/topic/chat.*"]).for_roles(["user"])];
    reloader.reload(&config).unwrap();

    let mut bob = TcpClient::open(addr).await;
    bob.handshake(connect_as("bob", "bob-pw")).await;
    bob.send_frame(frames::send("/topic/chat.lobby", "x")).await;
    bob.expect_error("access refused: /topic/chat.lobby").await;
    // Alice's session and subscription survived the reload; her next SEND is held to the new
    // rules.
    assert_eq!(broker.send("/topic/chat.lobby", "y").unwrap(), 1);
    assert_eq!(body(&alice.expect_message().await), "y");
    alice
        .send_frame(frames::send("/topic/chat.lobby", "z"))
        .await;
    alice
        .expect_error("access refused: /topic/chat.lobby")
        .await;

    // A bad users file is refused as a whole and the old users stay.
    std::fs::write(&path, "[[user]]\nlogin = 3\n").unwrap();
    let e = reloader.reload(&config).unwrap_err();
    assert!(e.to_string().contains("auth.users_file"), "{e}");
    let mut bob = TcpClient::open(addr).await;
    bob.handshake(connect_as("bob", "bob-pw")).await;

    let _ = stop.send(());
    within("shutdown", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn connections_are_limited_per_address_and_per_user_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = users_file(&dir);
    let server = TestServer::start(|c| {
        c.auth.users_file = Some(path.clone());
        c.broker.admission.max_per_address = 2;
        c.broker.admission.max_per_user = 1;
    })
    .await;
    let addr = server.tcp_addr;
    let other: IpAddr = "127.0.0.3".parse().unwrap();

    let mut alice = TcpClient::open_from(other, addr).await;
    alice.handshake(connect_as("alice", "alice-pw")).await;
    // A second session of alice, from another address: refused instead of CONNECTED.
    let mut again = TcpClient::open(addr).await;
    again.send_frame(connect_as("alice", "alice-pw")).await;
    let e = again
        .expect_error("too many connections for this user")
        .await;
    assert!(body(&e).contains("\"alice\" may have at most 1"), "{e:?}");
    assert!(again.next_item().await.is_none());

    // A second connection from alice's address is fine, a third is not.
    let mut root = TcpClient::open_from(other, addr).await;
    root.handshake(connect_as("root", "root-pw")).await;
    let mut third = TcpClient::open_from(other, addr).await;
    third
        .expect_error("too many connections from this address")
        .await;
    assert!(third.next_item().await.is_none());

    // Alice leaves: she may connect again, from anywhere.
    alice.send_frame(frames::disconnect("bye")).await;
    alice.expect_receipt("bye").await;
    assert!(alice.next_item().await.is_none());
    let mut back = TcpClient::open(addr).await;
    back.handshake(connect_as("alice", "alice-pw")).await;
    assert_eq!(server.broker.stats().refused_connections, 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn new_connections_per_address_are_rate_limited() {
    let server = TestServer::start(|c| {
        c.broker.admission.rate_per_address = 0.1;
        c.broker.admission.rate_burst = 3;
    })
    .await;
    let flooder: IpAddr = "127.0.0.4".parse().unwrap();
    for _ in 0..3 {
        let mut c = TcpClient::open_from(flooder, server.tcp_addr).await;
        c.handshake(frames::connect()).await;
    }
    let mut refused = TcpClient::open_from(flooder, server.tcp_addr).await;
    let e = refused.expect_error("connection rate exceeded").await;
    assert!(body(&e).contains("0.1 new connections per second"), "{e:?}");
    // Another address is not affected.
    let mut c = TcpClient::open(server.tcp_addr).await;
    c.handshake(frames::connect()).await;
    server.shutdown().await.unwrap();
}

/// Behind a trusted proxy, the client's address from `X-Forwarded-For` is what the loopback
/// default and the failed-login guard see; from anyone else, the header is ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_counts() {
    let server = TestServer::start(|c| {
        c.websocket.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    // No authentication configured: a remote client through a local proxy is not local.
    let mut proxied = ws_with(&server.ws_url, &[("x-forwarded-for", "203.0.113.7")]).await;
    proxied.send_frame(frames::connect()).await;
    proxied.expect_error(LOOPBACK_ONLY_MESSAGE).await;
    let mut local = ws_with(&server.ws_url, &[("x-forwarded-for", "127.0.0.1")]).await;
    local.handshake(frames::connect()).await;
    server.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = users_file(&dir);
    let server = TestServer::start(|c| {
        c.websocket.trusted_proxies = vec!["127.0.0.0/8".into()];
        c.auth.users_file = Some(path.clone());
        c.broker.login.max_failures = 2;
    })
    .await;
    let guess = |client: &'static str| {
        let url = server.ws_url.clone();
        async move {
            let mut c = ws_with(&url, &[("x-forwarded-for", client)]).await;
            c.send_frame(connect_as("alice", "guess")).await;
            let e = c.expect_frame(stompbox_codec::Command::Error).await;
            e.header("message").unwrap().to_owned()
        }
    };
    assert_eq!(guess("203.0.113.7").await, BAD_CREDENTIALS);
    assert_eq!(guess("203.0.113.7").await, BAD_CREDENTIALS);
    assert_eq!(guess("203.0.113.7").await, "too many failed logins");
    // Another client behind the same proxy is not held off.
    assert_eq!(guess("203.0.113.8").await, BAD_CREDENTIALS);
    server.shutdown().await.unwrap();
}

/// With `tcp.proxy_protocol`, the address in the load balancer's PROXY header is the client's:
/// the loopback default judges it. A connection without the header gets no session.
#[tokio::test]
async fn the_proxy_protocol_header_names_the_client_on_the_tcp_listener() {
    let server = TestServer::start(|c| c.tcp.proxy_protocol = true).await;
    let addr = server.tcp_addr;

    let mut remote = TcpClient::open(addr).await;
    remote
        .send(b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 61613\r\n")
        .await;
    remote.send_frame(frames::connect()).await;
    remote.expect_error(LOOPBACK_ONLY_MESSAGE).await;

    // Version 2 (binary), naming a loopback client: admitted.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend([
        0x21, 0x11, 0, 12, 127, 0, 0, 9, 127, 0, 0, 1, 0xC7, 0x38, 0xEF, 0xFD,
    ]);
    let mut local = TcpClient::open(addr).await;
    local.send(&v2).await;
    local.handshake(frames::connect()).await;

    // No header: closed, no STOMP session.
    let mut direct = TcpClient::open(addr).await;
    direct.send_frame(frames::connect()).await;
    assert!(direct.next_item().await.is_none());
    server.shutdown().await.unwrap();
}

/// `websocket.proxy_protocol`: the PROXY header comes before the HTTP upgrade.
#[tokio::test]
async fn the_proxy_protocol_header_names_the_client_on_the_websocket_listener() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start(|c| c.websocket.proxy_protocol = true).await;
    let through_balancer = |client: &'static str| {
        let (addr, url) = (server.ws_addr, server.ws_url.clone());
        async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let header = format!("PROXY TCP4 {client} 127.0.0.1 51000 15674\r\n");
            stream.write_all(header.as_bytes()).await.unwrap();
            WsClient::open_on(stream, &url).await
        }
    };
    let mut remote = through_balancer("203.0.113.7").await;
    remote.send_frame(frames::connect()).await;
    remote.expect_error(LOOPBACK_ONLY_MESSAGE).await;
    let mut local = through_balancer("127.0.0.9").await;
    local.handshake(frames::connect()).await;
    server.shutdown().await.unwrap();
}
