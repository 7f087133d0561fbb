//! The client side of an HTTP/1.1 response streamed in chunks (`sse.rs`, `xhr.rs`): its head,
//! then its chunks' data in order.

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};
use tokio::{io::AsyncReadExt, net::tcp::OwnedReadHalf};

/// Most bytes of a response head.
const MAX_HEAD: usize = 16 * 1024;

/// One connection's responses: bytes read and not yet taken out of their chunks.
#[derive(Default)]
pub(crate) struct Chunked {
    raw: BytesMut,
    /// Data bytes left in the current chunk.
    left: usize,
    /// The CRLF after a chunk's data is still to come.
    crlf: bool,
}

impl Chunked {
    /// Reads a response's head; errors unless it is `status`. Returns the head, lowercased.
    pub(crate) async fn head(&mut self, read: &mut OwnedReadHalf, status: &str) -> Result<String> {
        let end = loop {
            if let Some(at) = find(&self.raw, b"\r\n\r\n") {
                break at;
            }
            if self.raw.len() > MAX_HEAD {
                bail!("a response head is larger than {MAX_HEAD} bytes");
            }
            if read.read_buf(&mut self.raw).await? == 0 {
                bail!("the server closed the connection before answering");
            }
        };
        let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
        let got = head.split(' ').nth(1).unwrap_or_default();
        if got != status {
            let body = String::from_utf8_lossy(&self.raw[end + 4..])
                .trim()
                .to_owned();
            bail!("answered {got}, not {status}: {body}");
        }
        self.raw.advance(end + 4);
        (self.left, self.crlf) = (0, false);
        Ok(head)
    }

    /// More of the body into `out`, from what was read already (a head's read may have
    /// brought a whole response) or else from the socket: `Ok(None)` when the connection
    /// closed, `Ok(Some(true))` at the response's last chunk.
    pub(crate) async fn read(
        &mut self,
        read: &mut OwnedReadHalf,
        out: &mut BytesMut,
    ) -> Result<Option<bool>> {
        let before = out.len();
        if self.dechunk(out)? {
            return Ok(Some(true));
        }
        if out.len() > before {
            return Ok(Some(false));
        }
        self.raw.reserve(16 * 1024);
        if read.read_buf(&mut self.raw).await? == 0 {
            return Ok(None);
        }
        self.dechunk(out).map(Some)
    }

    /// Moves the chunks' data already read to `out`; true at the last (empty) chunk.
    pub(crate) fn dechunk(&mut self, out: &mut BytesMut) -> Result<bool> {
        loop {
            if self.left > 0 {
                let n = self.left.min(self.raw.len());
                if n == 0 {
                    return Ok(false);
                }
                out.extend_from_slice(&self.raw[..n]);
                self.raw.advance(n);
                self.left -= n;
                self.crlf = self.left == 0;
                continue;
            }
            if self.crlf {
                if self.raw.len() < 2 {
                    return Ok(false);
                }
                self.raw.advance(2);
                self.crlf = false;
            }
            let Some(at) = find(&self.raw, b"\r\n") else {
                return Ok(false);
            };
            let line = std::str::from_utf8(&self.raw[..at]).context("a chunk size")?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).context("a chunk size")?;
            self.raw.advance(at + 2);
            if size == 0 {
                // The trailer's empty line.
                if self.raw.len() >= 2 && &self.raw[..2] == b"\r\n" {
                    self.raw.advance(2);
                }
                return Ok(true);
            }
            self.left = size;
        }
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `text` percent-encoded for a query value.
pub(crate) fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_out_in_order_however_they_are_cut() {
        let mut chunked = Chunked::default();
        let mut out = BytesMut::new();
        chunked
            .raw
            .extend_from_slice(b"6\r\nid: 1\n\r\n11\r\ndata: hello\n\n: x\n\n\r\n5\r\ndata:");
        assert!(!chunked.dechunk(&mut out).unwrap());
        assert_eq!(&out[..], b"id: 1\ndata: hello\n\n: x\ndata:");
        chunked
            .raw
            .extend_from_slice(b"\r\n4\r\n a\n\n\r\n0\r\n\r\n");
        assert!(chunked.dechunk(&mut out).unwrap(), "the last chunk");
        assert!(out.ends_with(b"data: a\n\n"));
    }

    /// The head's read may bring a whole short response: it is taken from what was read, not
    /// waited for on a socket where nothing more will come until the next request.
    #[tokio::test]
    async fn what_was_read_with_the_head_is_not_waited_for_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, server) = tokio::join!(client, listener.accept());
        let (_server, _) = server.unwrap();
        let (mut read, _write) = client.unwrap().into_split();
        let mut chunked = Chunked::default();
        chunked.raw.extend_from_slice(b"3\r\nabc\r\n0\r\n\r\n");
        let mut out = BytesMut::new();
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            chunked.read(&mut read, &mut out),
        );
        assert_eq!(ended.await.expect("no wait").unwrap(), Some(true));
        assert_eq!(&out[..], b"abc");
    }
}
