//! The HTTP edge: the WebSocket listener's accept loop and HTTP/1.1 server, around the axum
//! router that holds the upgrade endpoint (`ws.rs`) and `/health`.
//!
//! It is ours rather than `axum::serve` because every socket must be bounded from the moment it
//! is accepted, whatever it sends or withholds:
//! - it counts against `broker.max_connections` (and its address against `[broker.admission]`)
//!   from the accept ([`Broker::accept`]); over a limit, the upgrade is answered 503;
//! - its request head must arrive within `broker.connect_timeout` of the accept, and be at most
//!   `websocket.max_request_head_size` (431 beyond); CONNECT must follow within the same
//!   deadline (the session measures it from the accept too);
//! - before CONNECTED it may send at most the request head plus
//!   `broker.max_frame_size_before_connect` ([`PreConnectCap`]);
//! - on shutdown, a connection still in HTTP (a request head never finished, a keep-alive
//!   connection) is closed within `broker.shutdown_grace`; upgraded sessions follow the
//!   broker's own shutdown.
//!
//! A PROXY protocol header and a TLS handshake come first when the listener has them
//! (`opening.rs`), each bounded by `connect_timeout`; the request head then gets what is left
//! of the deadline from the accept (at least 1 ms), and CONNECT the same deadline.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use stompbox_broker::{Accepted, Broker, TlsInfo};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::BurstReader;
use crate::listener::Acceptor;
use crate::opening::Opening;
use crate::pre_connect::PreConnectCap;

/// What every connection of the HTTP edge is served with.
#[derive(Clone, Debug)]
pub(crate) struct HttpEdge {
    pub(crate) broker: Broker,
    pub(crate) router: Router,
    pub(crate) opening: Opening,
    /// Count the socket's address against `[broker.admission]` at accept: true unless the
    /// client's address comes later (a PROXY header, `X-Forwarded-For` from a trusted proxy).
    pub(crate) admit_at_accept: bool,
    /// `websocket.max_request_head_size`.
    pub(crate) max_request_head: usize,
}

/// Accepts connections until `stop` is cancelled, serving each on a task of its own.
pub(crate) async fn serve(
    listener: TcpListener,
    edge: HttpEdge,
    stop: CancellationToken,
) -> io::Result<()> {
    let mut acceptor = Acceptor::new(listener, "websocket");
    let edge = Arc::new(edge);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            accepted = acceptor.accept() => accepted,
        };
        let accepted = edge.broker.accept();
        if edge.admit_at_accept {
            // A refusal is kept and answered 503 at the upgrade; `/health` still works.
            let _ = accepted.admit(peer.ip());
        }
        tokio::spawn(connection(
            stream,
            peer,
            accepted,
            edge.clone(),
            stop.clone(),
        ));
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    accepted: Arc<Accepted>,
    edge: Arc<HttpEdge>,
    stop: CancellationToken,
) {
    crate::set_nodelay(&mut stream);
    if edge.opening.is_plain() {
        let io = BurstReader::new(stream);
        return serve_http(io, peer, None, accepted, &edge, &stop).await;
    }
    // Boxed: a task is as large as its largest state, and the TLS one (rustls' connection
    // inline) would otherwise be carried by every plain connection too, an idle SSE stream's
    // included.
    Box::pin(opened(stream, peer, accepted, &edge, &stop)).await;
}

/// A connection that opens with a PROXY header or TLS (`opening.rs`) before its HTTP.
async fn opened(
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Arc<Accepted>,
    edge: &HttpEdge,
    stop: &CancellationToken,
) {
    let opened = tokio::select! {
        _ = stop.cancelled() => return,
        opened = edge.opening.open(stream, peer, &accepted) => opened,
    };
    match opened {
        Ok((stream, client)) => {
            let tls = crate::opening::tls_info(&stream);
            let io = BurstReader::new(stream);
            serve_http(io, client, tls, accepted, edge, stop).await;
        }
        Err(e) => tracing::debug!(%peer, error = %e, "connection dropped while opening"),
    }
}

/// Serves HTTP/1.1 on one connection until it closes or is upgraded (the WebSocket session
/// then runs on a task of its own); bounded by the shutdown grace once `stop` is cancelled.
async fn serve_http<IO>(
    io: IO,
    client: SocketAddr,
    tls: Option<TlsInfo>,
    accepted: Arc<Accepted>,
    edge: &HttpEdge,
    stop: &CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let config = edge.broker.config();
    let cap = edge.max_request_head + config.max_frame_size_before_connect;
    let io = PreConnectCap::new(io, accepted.clone(), cap);
    // What is left of the time from accept to CONNECT, for the first request head.
    let deadline = accepted.accepted_at() + config.connect_timeout;
    let head_timeout = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(1));
    let router = edge.router.clone();
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(client));
        extensions.insert(accepted.clone());
        if let Some(tls) = &tls {
            extensions.insert(tls.clone());
        }
        // The router's future: `Result<Response, Infallible>`, as hyper wants it.
        router.clone().call(request)
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(edge.max_request_head);
    let connection = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = stop.cancelled() => {
            // Lets a request in progress finish; a head never finished does not hold us up.
            connection.as_mut().graceful_shutdown();
            let grace = config.shutdown_grace;
            match tokio::time::timeout(grace, connection.as_mut()).await {
                Ok(served) => served,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(peer = %client, error = %e, "HTTP connection ended");
    }
}
