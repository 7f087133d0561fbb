//! The PROXY protocol (HAProxy's, versions 1 and 2) on a listener (`websocket.proxy_protocol`,
//! `tcp.proxy_protocol`): a TCP load balancer (HAProxy, nginx `stream`, AWS NLB) opens every
//! connection with a header naming the client's address, which then replaces the balancer's as
//! the peer: for the loopback default, the failed-login guard, the connection limits, logs and
//! the authenticator. With it on, a connection without a valid header is closed: the header is
//! only ever believed from the balancer, so every connection must come through one.
//!
//! The header is read before anything else (before TLS), bounded in size and time; bytes the
//! client sent after it are handed on untouched ([`Rewound`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Longest header accepted: a v1 header is at most 107 bytes; a v2 header carries the
/// addresses and optional TLVs (a cloud balancer's endpoint id), far below this.
const MAX_HEADER: usize = 4096;

/// Reads the PROXY header from `stream` within `timeout`: returns the client's address (`peer`
/// itself for a `LOCAL` command or an `UNKNOWN`/unspecified address family, which balancers
/// send for their own health checks) and the bytes read past the header.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    timeout: Duration,
) -> io::Result<(SocketAddr, Bytes)> {
    let read = async {
        let mut buffer = BytesMut::with_capacity(256);
        loop {
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(invalid(
                    "the connection closed before its PROXY header ended",
                ));
            }
            let parsed = HeaderResult::parse(&buffer);
            if parsed.is_incomplete() {
                if buffer.len() >= MAX_HEADER {
                    return Err(invalid("PROXY header too long"));
                }
                continue;
            }
            let (client, length) = match parsed {
                HeaderResult::V1(Ok(header)) => (v1_client(&header.addresses), header.header.len()),
                HeaderResult::V2(Ok(header)) => (v2_client(&header), header.len()),
                HeaderResult::V1(Err(e)) => return Err(invalid(&format!("PROXY v1: {e}"))),
                HeaderResult::V2(Err(e)) => return Err(invalid(&format!("PROXY v2: {e}"))),
            };
            buffer.advance(length);
            return Ok((client.unwrap_or(peer), buffer.freeze()));
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| invalid("no PROXY header within the connect timeout"))?
}

fn v1_client(addresses: &v1::Addresses) -> Option<SocketAddr> {
    match addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Unknown => None,
    }
}

fn v2_client(header: &v2::Header<'_>) -> Option<SocketAddr> {
    if header.command == v2::Command::Local {
        return None;
    }
    match header.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// A stream whose first bytes are `prefix` (read past a header), then the stream's own.
#[derive(Debug)]
pub(crate) struct Rewound<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewound<S> {
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Rewound { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "10.0.0.1:40000";

    async fn read(bytes: &[u8]) -> io::Result<(SocketAddr, Bytes)> {
        let mut stream = bytes;
        read_header(&mut stream, PEER.parse().unwrap(), Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn v1_and_v2_headers_give_the_client_and_keep_what_follows() {
        let (client, rest) = read(b"PROXY TCP4 203.0.113.7 10.0.0.2 51000 61613\r\nCONNECT\n")
            .await
            .unwrap();
        assert_eq!(client, "203.0.113.7:51000".parse().unwrap());
        assert_eq!(&rest[..], b"CONNECT\n");

        let (client, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 61613\r\n")
            .await
            .unwrap();
        assert_eq!(client, "[2001:db8::7]:51000".parse().unwrap());

        let (client, _) = read(b"PROXY UNKNOWN\r\n").await.unwrap();
        assert_eq!(
            client,
            PEER.parse().unwrap(),
            "a health check keeps the peer"
        );

        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend([
            0x21, 0x11, 0, 12, 203, 0, 113, 9, 10, 0, 0, 2, 0xC7, 0x38, 0xEF, 0xFD,
        ]);
        v2.extend(b"rest");
        let (client, rest) = read(&v2).await.unwrap();
        assert_eq!(client, "203.0.113.9:51000".parse().unwrap());
        assert_eq!(&rest[..], b"rest");
    }

    #[tokio::test]
    async fn no_header_a_bad_one_or_a_silent_client_is_refused() {
        assert!(read(b"CONNECT\naccept-version:1.2\n\n\0").await.is_err());
        assert!(read(b"PROXY TCP4 not-an-address\r\n").await.is_err());
        assert!(
            read(b"PROXY TCP4 1.2.3.4").await.is_err(),
            "closed mid-header"
        );
        let long = [b'P'; MAX_HEADER + 10];
        assert!(read(&long).await.is_err());
        let (_silent, mut server) = tokio::io::duplex(64);
        let waited = read_header(
            &mut server,
            PEER.parse().unwrap(),
            Duration::from_millis(20),
        );
        assert!(waited.await.is_err());
    }

    #[tokio::test]
    async fn rewound_reads_the_prefix_first() {
        let mut stream = Rewound::new(Bytes::from_static(b"abc"), &b"def"[..]);
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"abcdef");
    }
}
