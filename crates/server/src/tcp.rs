//! The TCP edge: accepts STOMP-over-TCP connections and moves bytes between the socket and
//! [`Broker::serve`]. Reads become [`Inbound::Data`] chunks as they arrive; outbound batches
//! are written whole.

use std::{io, net::SocketAddr};

use futures::{Sink, SinkExt, StreamExt};
use stompbox_broker::{Broker, ConnectionInfo, Inbound, Outbound, TransportKind};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream, tcp::OwnedWriteHalf},
};
use tokio_util::{io::ReaderStream, sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

/// Accepts connections until `stop` is cancelled, serving each on a task of `tracker`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    broker: Broker,
    read_buffer_size: usize,
    tracker: TaskTracker,
    stop: CancellationToken,
) -> io::Result<()> {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Per-connection failures (the peer reset before accept, fd exhaustion) must not
                // stop the listener; back off briefly on resource exhaustion.
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    if is_resource_exhaustion(&e) {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        // The broker opens a `session{id transport peer}` span (info) inside this one; this one
        // is debug for idle memory, as on the WebSocket edge.
        let span = tracing::debug_span!(
            "connection",
            peer = %peer,
            transport = "tcp",
        );
        tracker.spawn(serve(broker.clone(), stream, peer, read_buffer_size).instrument(span));
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE / ENFILE / ENOBUFS / ENOMEM have no ErrorKind of their own.
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

/// Serves one TCP connection to its end.
pub(crate) async fn serve(broker: Broker, stream: TcpStream, peer: SocketAddr, read_size: usize) {
    tracing::debug!("connected");
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let inbound = ReaderStream::with_capacity(read, read_size).map(|r| r.map(Inbound::Data));
    let mut outbound = Box::pin(tcp_sink(write));
    let info = ConnectionInfo {
        peer: Some(peer),
        transport: TransportKind::Tcp,
        handshake: None,
        tls: None,
    };
    let reason = broker.serve(info, inbound, &mut outbound).await;
    // Bounded: a peer that stopped reading must not pin the connection; dropping closes it.
    let _ = tokio::time::timeout(crate::CLOSE_TIMEOUT, outbound.close()).await;
    tracing::debug!(?reason, "closed");
}

/// Each batch is written whole before the next is accepted. Dropping the sink (with the
/// write half) sends FIN after the last bytes.
fn tcp_sink(write: OwnedWriteHalf) -> impl Sink<Outbound, Error = io::Error> + Send {
    futures::sink::unfold(write, |mut write, out: Outbound| async move {
        write.write_all(&out.bytes).await?;
        Ok::<_, io::Error>(write)
    })
}
