//! The SockJS protocol test suite's standard services, for `sockjs-protocol.py`
//! (github.com/sockjs/sockjs-protocol) and `sockjs-client`'s own tests:
//!
//! - `/echo`: sends back every message;
//! - `/close`: closes every session as soon as it opens (`c[3000,"Go away!"]`);
//! - `/disabled_websocket_echo`: `/echo` without the `websocket` transport;
//! - `/cookie_needed_echo`: `/echo` with `cookie_needed` (a `JSESSIONID` cookie).
//!
//! Streaming responses end after 4 KiB, as the suite expects of a test server (sockjs-node's
//! test server does the same).
//!
//! Run: `cargo run -p stompbox-sockjs --example test_server -- 127.0.0.1:8081`, then
//! `SOCKJS_URL=http://127.0.0.1:8081 python2 sockjs-protocol.py` in a checkout of the suite.

use std::net::SocketAddr;

use axum::Router;
use stompbox_sockjs::{Config, Session, SockJs, handler_fn};

async fn echo(mut session: Session) {
    while let Some(message) = session.recv().await {
        if session.send(message).await.is_err() {
            break;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = app();
    println!("listening http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The four services on one router.
fn app() -> Router {
    let base = Config {
        streaming_bytes_limit: 4096,
        ..Config::default()
    };
    let echo_endpoint = SockJs::new(base.clone(), handler_fn(echo));
    let close = SockJs::new(
        base.clone(),
        handler_fn(|session: Session| async move { session.close(3000, "Go away!") }),
    );
    let no_websocket = SockJs::new(
        Config {
            websocket: false,
            ..base.clone()
        },
        handler_fn(echo),
    );
    let cookie = SockJs::new(
        Config {
            cookie_needed: true,
            ..base
        },
        handler_fn(echo),
    );
    Router::new()
        .merge(echo_endpoint.router("/echo"))
        .merge(close.router("/close"))
        .merge(no_websocket.router("/disabled_websocket_echo"))
        .merge(cookie.router("/cookie_needed_echo"))
}
