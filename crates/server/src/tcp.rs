//! The TCP edge: accepts STOMP-over-TCP connections (in TLS when `[tcp.tls]` says so) and
//! moves bytes between the stream and [`Broker::serve`]. Reads become [`Inbound::Data`] chunks
//! as they arrive; outbound batches are written whole.

use std::{io, net::SocketAddr, sync::Arc};

use futures::{Sink, StreamExt};
use stompbox_broker::{
    Accepted, Broker, CloseReason, ConnectionInfo, Inbound, Outbound, TlsInfo, TransportKind,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};
use tokio_util::{io::ReaderStream, sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::listener::Acceptor;
use crate::opening::Opening;

/// Accepts connections until `stop` is cancelled, serving each on a task of `tracker`. Each
/// counts against `broker.max_connections` from the accept; that task first reads the PROXY
/// header and does the TLS handshake when `opening` says so.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    broker: Broker,
    read_buffer_size: usize,
    opening: Opening,
    tracker: TaskTracker,
    stop: CancellationToken,
) -> io::Result<()> {
    let mut acceptor = Acceptor::new(listener, "tcp");
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            accepted = acceptor.accept() => accepted,
        };
        let accepted = broker.accept();
        // The broker opens a `session{id transport peer}` span (info) inside this one; this one
        // is debug for idle memory, as on the WebSocket edge.
        let span = tracing::debug_span!(
            "connection",
            peer = %peer,
            transport = "tcp",
        );
        let broker = broker.clone();
        let _ = stream.set_nodelay(true);
        if opening.is_plain() {
            let _ = accepted.admit(peer.ip());
            let serving = serve(broker, stream, peer, read_buffer_size, None, accepted);
            tracker.spawn(serving.instrument(span));
            continue;
        }
        let (opening, stop) = (opening.clone(), stop.clone());
        let open_then_serve = async move {
            let opened = tokio::select! {
                _ = stop.cancelled() => return,
                opened = opening.open(stream, peer, &accepted) => opened,
            };
            match opened {
                Ok((stream, client)) => {
                    let tls = crate::opening::tls_info(&stream);
                    serve(broker, stream, client, read_buffer_size, tls, accepted).await;
                }
                Err(e) => tracing::info!(%peer, error = %e, "connection dropped while opening"),
            }
        };
        tracker.spawn(open_then_serve.instrument(span));
    }
}

/// Serves one connection (a `TcpStream`, or the TLS stream over one) to its end.
pub(crate) async fn serve<S>(
    broker: Broker,
    stream: S,
    peer: SocketAddr,
    read_size: usize,
    tls: Option<TlsInfo>,
    accepted: Arc<Accepted>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    tracing::debug!("connected");
    let (read, mut write) = tokio::io::split(stream);
    let mut inbound = ReaderStream::with_capacity(read, read_size).map(|r| r.map(Inbound::Data));
    let info = ConnectionInfo {
        peer: Some(peer),
        transport: TransportKind::Tcp,
        handshake: None,
        tls: tls.map(Box::new),
        accepted: Some(accepted),
    };
    let mut outbound = Box::pin(tcp_sink(&mut write));
    let reason = broker.serve(info, &mut inbound, &mut outbound).await;
    drop(outbound);
    // FIN after the last bytes (close_notify first in TLS). Then, unless the client closed
    // first, a lingering close: what it still sends is read and dropped until its FIN, because
    // closing a socket with unread input makes the kernel send a reset, and a reset makes the
    // client's kernel drop what it has not read yet, our ERROR included. Bounded: a peer that
    // stopped reading or keeps writing does not pin the connection.
    let closing = async {
        write.shutdown().await?;
        if reason != CloseReason::TransportClosed {
            while let Some(Ok(_)) = inbound.next().await {}
        }
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(crate::CLOSE_TIMEOUT, closing).await;
    tracing::debug!(?reason, "closed");
}

/// Each batch is written whole before the next is accepted.
fn tcp_sink<W>(write: W) -> impl Sink<Outbound, Error = io::Error> + Send
where
    W: AsyncWrite + Unpin + Send,
{
    futures::sink::unfold(write, |mut write, out: Outbound| async move {
        write.write_all(&out.bytes).await?;
        Ok::<_, io::Error>(write)
    })
}
