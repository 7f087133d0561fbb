//! How a connection opens before STOMP: a PROXY protocol header from a load balancer
//! (`proxy_protocol.rs`) and a TLS handshake (`tls.rs`), each optional, each bounded by the
//! broker's `connect_timeout`. [`Opening`] says which; both edges run it per connection, on
//! the connection's own task (`tcp.rs`, `http.rs`), so a slow or silent client never holds up
//! the next one.

use std::{io, net::SocketAddr, time::Duration};

use bytes::Bytes;
use stompbox_broker::{Accepted, TlsInfo};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

use crate::proxy_protocol::{self, Rewound};
use crate::tls::TlsEdge;

/// What a connection goes through before STOMP.
#[derive(Clone, Debug)]
pub(crate) struct Opening {
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

    /// Runs the opening on `stream` from `peer`: the client's address (counted against
    /// `[broker.admission]` on `accepted`) and the opened stream, or why the connection is
    /// dropped.
    pub(crate) async fn open(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        accepted: &Accepted,
    ) -> io::Result<(Opened, SocketAddr)> {
        let (client, rest) = match self.proxy_protocol {
            true => proxy_protocol::read_header(&mut stream, peer, self.timeout).await?,
            false => (peer, Bytes::new()),
        };
        // Before the TLS handshake, whose CPU a flood from one address must not get. Without
        // TLS, the session (or the upgrade) answers the refusal itself.
        if let Err(refusal) = accepted.admit(client.ip())
            && self.tls.is_some()
        {
            accepted.count_refused();
            return Err(io::Error::other(refusal.message()));
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
