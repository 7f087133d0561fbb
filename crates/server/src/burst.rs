//! [`BurstReader`]: small reads while a connection is quiet, large ones while it streams.
//!
//! The WebSocket codec reads into a buffer it keeps for the connection's whole life, so that
//! buffer is small (`websocket.read_buffer_size`, 1 KiB) to keep idle connections cheap. A
//! publisher streaming messages then costs one `recv` per KiB. This reader sits between the
//! socket and the codec: once a read fills the codec's whole buffer (the peer is sending faster
//! than it is read), it reads [`BURST_READ_SIZE`] bytes at a time into a buffer of its own and
//! hands them out from memory; when the socket runs dry it frees that buffer again, so a quiet
//! connection holds nothing extra.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Bytes read at once while a connection streams: many frames per `recv`, and freed when the
/// stream pauses.
pub const BURST_READ_SIZE: usize = 16 * 1024;

/// See the module documentation. Writes pass straight through.
#[derive(Debug)]
pub struct BurstReader<S> {
    inner: S,
    /// Empty (no allocation) unless streaming.
    buffer: Vec<u8>,
    /// `buffer[start..end]` is read and not handed out yet.
    start: usize,
    end: usize,
    /// The last direct read filled the caller's buffer: read in bursts.
    streaming: bool,
}

impl<S> BurstReader<S> {
    /// Wraps `inner`, starting in direct (unbuffered) mode.
    pub fn new(inner: S) -> BurstReader<S> {
        BurstReader {
            inner,
            buffer: Vec::new(),
            start: 0,
            end: 0,
            streaming: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Bytes this reader holds allocated now (0 while quiet).
    pub fn buffer_capacity(&self) -> usize {
        self.buffer.capacity()
    }

    fn release(&mut self) {
        self.buffer = Vec::new();
        (self.start, self.end) = (0, 0);
        self.streaming = false;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BurstReader<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start == this.end {
            if !this.streaming || out.remaining() >= BURST_READ_SIZE {
                let wanted = out.remaining();
                let before = out.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
                this.streaming = wanted > 0 && out.filled().len() - before == wanted;
                return Poll::Ready(Ok(()));
            }
            if this.buffer.is_empty() {
                this.buffer = vec![0; BURST_READ_SIZE];
            }
            let mut burst = ReadBuf::new(&mut this.buffer);
            match Pin::new(&mut this.inner).poll_read(cx, &mut burst) {
                Poll::Pending => {
                    // The stream paused: give the memory back while waiting.
                    this.release();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    this.release();
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => {}
            }
            let read = burst.filled().len();
            if read == 0 {
                // End of stream.
                this.release();
                return Poll::Ready(Ok(()));
            }
            (this.start, this.end) = (0, read);
        }
        let n = out.remaining().min(this.end - this.start);
        out.put_slice(&this.buffer[this.start..this.start + n]);
        this.start += n;
        if this.start == this.end && this.end < BURST_READ_SIZE {
            // The socket had less than a burst: it is drained, so stop streaming.
            this.release();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BurstReader<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A TCP listener whose connections are [`BurstReader`]s, for `axum::serve`. Wrap it in
/// `tap_io` (as the server does for TCP_NODELAY) and `ConnectInfo<SocketAddr>` works as with a
/// plain `TcpListener`.
#[derive(Debug)]
pub struct BurstListener(pub TcpListener);

impl axum::serve::Listener for BurstListener {
    type Io = BurstReader<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, peer) = axum::serve::Listener::accept(&mut self.0).await;
        (BurstReader::new(stream), peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_quiet_connection_reads_directly_and_holds_nothing() {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let mut reader = BurstReader::new(ours);
        peer.write_all(b"CONNECT\n\n\0").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"CONNECT\n\n\0");
        assert_eq!(reader.buffer_capacity(), 0);
    }

    #[tokio::test]
    async fn a_stream_is_read_in_bursts_exactly_and_the_buffer_is_freed_when_it_pauses() {
        let (mut peer, ours) = tokio::io::duplex(256 * 1024);
        let mut reader = BurstReader::new(ours);
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent).await.unwrap();

        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        let mut saw_burst = false;
        while received.len() < sent.len() {
            let n = reader.read(&mut buf).await.unwrap();
            assert!(n > 0);
            received.extend_from_slice(&buf[..n]);
            saw_burst |= reader.buffer_capacity() == BURST_READ_SIZE;
        }
        assert_eq!(received, sent);
        assert!(saw_burst, "a full 1 KiB read switches to bursts");

        // Nothing more to read: the read waits, and the burst buffer is gone meanwhile.
        assert!(reader.read(&mut buf).now_or_never().is_none());
        assert_eq!(reader.buffer_capacity(), 0);

        // And the end of the stream still reads as 0.
        drop(peer);
        assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_burst_that_finds_the_socket_empty_gives_its_buffer_back() {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let mut reader = BurstReader::new(ours);
        // Exactly one full 1 KiB read: the reader switches to bursts...
        peer.write_all(&[7u8; 1024]).await.unwrap();
        let mut buf = [0u8; 1024];
        assert_eq!(reader.read(&mut buf).await.unwrap(), 1024);
        // ...but the next read finds nothing: it waits without holding a burst buffer.
        assert!(reader.read(&mut buf).now_or_never().is_none());
        assert_eq!(reader.buffer_capacity(), 0);
        peer.write_all(b"more").await.unwrap();
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"more");
    }
}
