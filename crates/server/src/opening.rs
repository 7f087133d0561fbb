//! How a connection opens before STOMP: a PROXY protocol header from a load balancer
//! (`proxy_protocol.rs`) and a TLS handshake (`tls.rs`), each optional, each bounded by the
//! broker's `connect_timeout`. [`Opening`] says which; the TCP edge runs it per connection
//! (`tcp.rs`), and [`OpeningListener`] runs it for `axum::serve` on the WebSocket listener.
//!
//! [`OpeningListener`]'s accept loop only accepts: each opening runs on a task of its own and
//! hands the finished stream to axum through a channel, so a slow or silent client never holds
//! up the next one. axum learns the client from [`OpenedPeer`] (its connect info);
//! [`expose_peer`] turns that into the `ConnectInfo<SocketAddr>` every handler expects, plus
//! the [`TlsInfo`] of a TLS connection.

use std::{io, net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Request, connect_info::Connected},
    serve::IncomingStream,
};
use bytes::Bytes;
use stompbox_broker::{Broker, TlsInfo};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

use crate::proxy_protocol::{self, Rewound};
use crate::{BurstReader, tls::TlsEdge};

/// What a connection goes through before STOMP.
#[derive(Clone, Debug)]
pub(crate) struct Opening {
    /// Whose connection rate (`admission.rate_per_address`) is checked before the handshake.
    pub(crate) broker: Broker,
    /// A PROXY protocol header first (`proxy_protocol` of the listener).
    pub(crate) proxy_protocol: bool,
    /// Then a TLS handshake.
    pub(crate) tls: Option<TlsEdge>,
    /// Bound on each step.
    pub(crate) timeout: Duration,
}

/// A connection after its opening: the socket (behind what the PROXY header left unread), in
/// TLS or not.
pub(crate) type Opened = Either<Rewound<TcpStream>, TlsStream<Rewound<TcpStream>>>;

impl Opening {
    /// Nothing to do before STOMP: the edges serve the socket as it is.
    pub(crate) fn is_plain(&self) -> bool {
        !self.proxy_protocol && self.tls.is_none()
    }

    /// Runs the opening on `stream` from `peer`: the client's address and the opened stream
    /// (counted against the connection rate: the session passes `rate_checked`), or why the
    /// connection is dropped.
    pub(crate) async fn open(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
    ) -> io::Result<(Opened, SocketAddr)> {
        let (client, rest) = match self.proxy_protocol {
            true => proxy_protocol::read_header(&mut stream, peer, self.timeout).await?,
            false => (peer, Bytes::new()),
        };
        // Before the TLS handshake, whose CPU a flood from one address must not get.
        if !self.broker.admit_connection_rate(client.ip()) {
            return Err(io::Error::other("connection rate exceeded"));
        }
        let stream = Rewound::new(rest, stream);
        let opened = match &self.tls {
            None => Either::Left(stream),
            Some(edge) => Either::Right(edge.handshake(stream, self.timeout).await?),
        };
        Ok((opened, client))
    }
}

/// The TLS session of an opened connection, if it is in TLS.
pub(crate) fn tls_info(opened: &Opened) -> Option<TlsInfo> {
    match opened {
        Either::Left(_) => None,
        Either::Right(tls) => Some(crate::tls::info(tls.get_ref().1)),
    }
}

/// Finished openings waiting for axum's accept: a few, since axum accepts as fast as it can.
const OPENED_QUEUE: usize = 64;

/// An opened connection, read through a [`BurstReader`] like a plain one.
pub(crate) type OpenedIo = BurstReader<Opened>;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct OpeningListener {
    opened: mpsc::Receiver<(OpenedIo, SocketAddr)>,
    local: SocketAddr,
}

impl OpeningListener {
    /// Starts accepting on `listener`. Dropping the returned listener stops the accept loop
    /// and abandons pending openings.
    pub(crate) fn spawn(listener: TcpListener, opening: Opening) -> io::Result<OpeningListener> {
        let local = listener.local_addr()?;
        let (done, opened) = mpsc::channel(OPENED_QUEUE);
        tokio::spawn(accept_loop(listener, opening, done));
        Ok(OpeningListener { opened, local })
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    opening: Opening,
    done: mpsc::Sender<(OpenedIo, SocketAddr)>,
) {
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = done.closed() => return,
            // axum's accept for a TcpListener retries (and backs off on fd exhaustion) itself.
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        let (opening, done) = (opening.clone(), done.clone());
        tokio::spawn(async move {
            crate::set_nodelay(&mut stream);
            let opened = tokio::select! {
                _ = done.closed() => return,
                opened = opening.open(stream, peer) => opened,
            };
            match opened {
                Ok((stream, client)) => {
                    let _ = done.send((BurstReader::new(stream), client)).await;
                }
                Err(e) => tracing::debug!(%peer, error = %e, "connection dropped while opening"),
            }
        });
    }
}

impl axum::serve::Listener for OpeningListener {
    type Io = OpenedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.opened.recv().await {
            Some(opened) => opened,
            // The accept loop ends only once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The connect info of an opened connection: the client (from the PROXY header, or the peer)
/// and its TLS session.
#[derive(Clone, Debug)]
pub(crate) struct OpenedPeer {
    addr: SocketAddr,
    tls: Option<TlsInfo>,
}

impl Connected<IncomingStream<'_, OpeningListener>> for OpenedPeer {
    fn connect_info(stream: IncomingStream<'_, OpeningListener>) -> Self {
        OpenedPeer {
            addr: *stream.remote_addr(),
            tls: tls_info(stream.io().get_ref()),
        }
    }
}

/// Marks a request whose connection was counted against the connection rate by its opening.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateChecked;

/// Middleware (`axum::middleware::map_request`): a request on an opened connection gets
/// `ConnectInfo<SocketAddr>`, as on a plain one, [`RateChecked`], and the connection's
/// [`TlsInfo`], if any.
pub(crate) async fn expose_peer(mut request: Request) -> Request {
    let peer = request
        .extensions()
        .get::<ConnectInfo<OpenedPeer>>()
        .cloned();
    if let Some(ConnectInfo(peer)) = peer {
        request.extensions_mut().insert(ConnectInfo(peer.addr));
        request.extensions_mut().insert(RateChecked);
        if let Some(tls) = peer.tls {
            request.extensions_mut().insert(tls);
        }
    }
    request
}
