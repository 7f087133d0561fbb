//! [`TlsListener`]: `wss://` for `axum::serve`. The accept loop only accepts; each handshake
//! runs on a task of its own, bounded in time, and hands the finished stream to axum through a
//! channel, so a slow or silent client never holds up the next one.
//!
//! axum learns the peer from [`TlsPeer`] (its connect info); [`expose_peer`] turns that into
//! the `ConnectInfo<SocketAddr>` every handler expects, plus the [`TlsInfo`] for the route.

use std::{io, net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Request, connect_info::Connected},
    serve::IncomingStream,
};
use stompbox_broker::TlsInfo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::server::TlsStream;

use crate::{BurstReader, tls::TlsEdge};

/// Finished handshakes waiting for axum's accept: a few, since axum accepts as fast as it can.
const HANDSHAKEN_QUEUE: usize = 64;

/// A connection after its handshake, read through a [`BurstReader`] like a plain one.
pub(crate) type TlsIo = BurstReader<TlsStream<TcpStream>>;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct TlsListener {
    handshaken: mpsc::Receiver<(TlsIo, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener`; handshakes taking longer than `timeout` are dropped.
    /// Dropping the returned listener stops the accept loop and abandons pending handshakes.
    pub(crate) fn spawn(
        listener: TcpListener,
        edge: TlsEdge,
        timeout: Duration,
    ) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (done, handshaken) = mpsc::channel(HANDSHAKEN_QUEUE);
        tokio::spawn(accept_loop(listener, edge, timeout, done));
        Ok(TlsListener { handshaken, local })
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    edge: TlsEdge,
    timeout: Duration,
    done: mpsc::Sender<(TlsIo, SocketAddr)>,
) {
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = done.closed() => return,
            // axum's accept for a TcpListener retries (and backs off on fd exhaustion) itself.
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        let (edge, done) = (edge.clone(), done.clone());
        tokio::spawn(async move {
            crate::set_nodelay(&mut stream);
            let handshake = tokio::select! {
                _ = done.closed() => return,
                handshake = edge.handshake(stream, timeout) => handshake,
            };
            match handshake {
                Ok(stream) => {
                    let _ = done.send((BurstReader::new(stream), peer)).await;
                }
                Err(e) => tracing::debug!(%peer, error = %e, "wss handshake failed"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(handshaken) => handshaken,
            // The accept loop ends only once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The connect info of a `wss://` connection: the peer and its TLS session.
#[derive(Clone, Debug)]
pub(crate) struct TlsPeer {
    addr: SocketAddr,
    tls: TlsInfo,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        TlsPeer {
            addr: *stream.remote_addr(),
            tls: crate::tls::info(stream.io().get_ref().get_ref().1),
        }
    }
}

/// Middleware (`axum::middleware::map_request`): a request on a `wss://` connection gets
/// `ConnectInfo<SocketAddr>`, as on a plain one, and the connection's [`TlsInfo`].
pub(crate) async fn expose_peer(mut request: Request) -> Request {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<TlsPeer>>().cloned() {
        request.extensions_mut().insert(ConnectInfo(peer.addr));
        request.extensions_mut().insert(peer.tls);
    }
    request
}
