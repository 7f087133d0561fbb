//! [`PreConnectCap`]: bounds what a client may send before its session is connected.
//!
//! Over TCP, the broker's decoder bounds a frame before CONNECT to
//! `broker.max_frame_size_before_connect`. Over WebSocket, the WebSocket codec assembles a
//! whole message before the broker sees any of it, up to the message limit of a *connected*
//! session (megabytes), so an unauthenticated client could make the server hold that much per
//! socket. This reader sits under the HTTP server and the WebSocket codec and counts every byte
//! read until the session says it is connected ([`Accepted::is_connected`]): past the cap, the
//! read fails with [`PreConnectLimit`], which the WebSocket edge turns into ERROR `too much
//! before CONNECT` and a close. After CONNECTED it only passes reads through. A keep-alive
//! HTTP connection that never upgrades (a health checker polling `/health`) is counted the
//! same way: past the cap its next read fails, the connection closes, and the checker
//! reconnects.

use std::{
    fmt, io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use stompbox_broker::Accepted;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct PreConnectCap<S> {
    inner: S,
    /// Until the session is connected; then `None`, and reads are not counted.
    accepted: Option<Arc<Accepted>>,
    read: usize,
    max: usize,
}

/// The error a read returns once a client sent more than the cap before CONNECTED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PreConnectLimit {
    /// The cap, in bytes.
    pub(crate) max: usize,
}

impl fmt::Display for PreConnectLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "more than {} bytes received before CONNECTED (broker.max_frame_size_before_connect \
             plus websocket.max_request_head_size)",
            self.max
        )
    }
}

impl std::error::Error for PreConnectLimit {}

impl<S> PreConnectCap<S> {
    pub(crate) fn new(inner: S, accepted: Arc<Accepted>, max: usize) -> Self {
        PreConnectCap {
            inner,
            accepted: Some(accepted),
            read: 0,
            max,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PreConnectCap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(accepted) = &this.accepted else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if accepted.is_connected() {
            this.accepted = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.read > this.max {
            let limit = PreConnectLimit { max: this.max };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, limit)));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read += buf.filled().len() - before;
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PreConnectCap<S> {
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
