//! The authentication hook over a real WebSocket: it sees the CONNECT headers and the upgrade
//! request (headers, cookies, query), so token-in-header, token-in-passcode, cookie and query
//! sessions all work, and the principal it returns is the user of `/user/...` destinations.

mod common;

use common::{WsClient, frames, within};
use futures::future::BoxFuture;
use stompbox_broker::{AuthError, Authenticator, ConnectRequest, Principal, SendToUser};
use stompbox_codec::Command;
use stompbox_server::{Broker, Server, ServerConfig};
use tokio::net::TcpStream;

/// Accepts `token-<name>` from, in order: an `authorization: Bearer` CONNECT header, the
/// passcode, a `sid` cookie of the upgrade request, a `token` query parameter.
struct Tokens;

fn user_of(token: &str) -> Option<Principal> {
    token.strip_prefix("token-").map(Principal::new)
}

impl Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let handshake = request.connection.handshake.as_ref();
        let cookie = handshake
            .and_then(|h| h.headers.get("cookie"))
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split("; ").find_map(|kv| kv.strip_prefix("sid=")));
        let query = handshake
            .and_then(|h| h.uri.query())
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        let token = request
            .headers
            .get("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .or(request.passcode)
            .or(cookie)
            .or(query);
        let verdict = match token.and_then(user_of) {
            Some(p) => Ok(Some(p)),
            None => Err(AuthError::new("invalid credentials")),
        };
        Box::pin(async move { verdict })
    }
}

async fn start() -> (String, tokio::sync::oneshot::Sender<()>) {
    let broker = Broker::builder()
        .authenticator(Tokens)
        .on_send("/whoami", |p: Principal| async move {
            SendToUser::new("/queue/me", p.name)
        })
        .build()
        .unwrap();
    let mut config = ServerConfig::default();
    // In-process servers of a test run must not share (or create) ./stompbox-data.
    config.store.enabled = false;
    config.websocket.listen = "127.0.0.1:0".parse().unwrap();
    config.tcp.enabled = false;
    let server = Server::bind_with_broker(config, broker).await.unwrap();
    let url = server.ws_url().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

async fn open(url: &str, headers: &[(&'static str, &str)]) -> WsClient {
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap();
    let stream = within("connect", TcpStream::connect(addr)).await.unwrap();
    WsClient::open_with(stream, url, headers).await
}

/// Connects with `connect`, asks the server who we are.
async fn whoami(mut client: WsClient, connect: stompbox_codec::Frame) -> String {
    client.send_frame(&connect).await;
    client.expect_frame(Command::Connected).await;
    client.subscribe("me", "/user/queue/me").await;
    client.send_frame(&frames::send("/app/whoami", "")).await;
    let m = client.expect_frame(Command::Message).await;
    String::from_utf8(m.body.to_vec()).unwrap()
}

#[tokio::test]
async fn the_hook_sees_connect_headers_cookies_and_query() {
    let (url, _stop) = start().await;
    let header = frames::connect().with_header("authorization", "Bearer token-alice");
    assert_eq!(whoami(open(&url, &[]).await, header).await, "alice");
    let passcode = frames::connect()
        .with_header("login", "ignored")
        .with_header("passcode", "token-bob");
    assert_eq!(whoami(open(&url, &[]).await, passcode).await, "bob");
    let cookie = open(&url, &[("cookie", "theme=dark; sid=token-carol")]).await;
    assert_eq!(whoami(cookie, frames::connect()).await, "carol");
    let query = open(&format!("{url}?token=token-dave"), &[]).await;
    assert_eq!(whoami(query, frames::connect()).await, "dave");
}

#[tokio::test]
async fn refused_credentials_get_error_and_close() {
    let (url, _stop) = start().await;
    let mut client = open(&url, &[("cookie", "sid=nope")]).await;
    client.send_frame(&frames::connect()).await;
    let error = client.expect_frame(Command::Error).await;
    assert_eq!(error.header("message"), Some("invalid credentials"));
    assert!(client.try_recv().await.is_none());
}
