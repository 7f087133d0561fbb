//! An in-memory transport: the two halves the broker's `serve` takes, and the client's ends.
//!
//! Both directions are bounded channels, so a client that stops reading really does stop the
//! broker's writes (after `capacity` batches), as a full socket would.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::{Sink, Stream};
use stompbox_broker::{Inbound, Outbound};

/// The broker's read half: what the client sent.
#[derive(Debug)]
pub struct MemoryInbound(mpsc::Receiver<io::Result<Inbound>>);

/// The broker's write half: batches for the client.
#[derive(Debug)]
pub struct MemoryOutbound(mpsc::Sender<Outbound>);

/// The client's halves.
#[derive(Debug)]
pub struct ClientEnd {
    /// Chunks (or errors) for the broker to read. Dropping it is EOF.
    pub tx: mpsc::Sender<io::Result<Inbound>>,
    /// Batches the broker wrote. Ends when the broker drops its write half.
    pub rx: mpsc::Receiver<Outbound>,
}

/// A connected pair; each direction buffers about `capacity` chunks.
pub fn pair(capacity: usize) -> (ClientEnd, MemoryInbound, MemoryOutbound) {
    let (in_tx, in_rx) = mpsc::channel(capacity);
    let (out_tx, out_rx) = mpsc::channel(capacity);
    (
        ClientEnd {
            tx: in_tx,
            rx: out_rx,
        },
        MemoryInbound(in_rx),
        MemoryOutbound(out_tx),
    )
}

impl Stream for MemoryInbound {
    type Item = io::Result<Inbound>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}

fn closed(_: mpsc::SendError) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client end is gone")
}

impl Sink<Outbound> for MemoryOutbound {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(closed)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> io::Result<()> {
        Pin::new(&mut self.0).start_send(item).map_err(closed)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(closed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(closed)
    }
}
