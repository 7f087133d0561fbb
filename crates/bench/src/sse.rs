//! A Server-Sent Events receiver, as a browser's `EventSource` is one: `GET PATH?destination=D`
//! over HTTP/1.1, the chunked body taken apart, and each event handed out as a MESSAGE frame
//! whose body is the event's data (the bench's bodies are one line of text), so the subscriber
//! checks it as any other delivery.

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};
use stompbox_codec::{Command, Frame};
use tokio::{io::AsyncReadExt, net::tcp::OwnedReadHalf};

/// Most bytes of a response head.
const MAX_HEAD: usize = 16 * 1024;

/// The state of one stream: its request, and the chunked encoding of its response.
pub(crate) struct SseReader {
    path: String,
    host: String,
    /// Bytes read and not yet taken out of their chunks.
    raw: BytesMut,
    /// Data bytes left in the current chunk.
    left: usize,
    /// The CRLF after a chunk's data is still to come.
    crlf: bool,
}

impl SseReader {
    pub(crate) fn new(path: &str, host: &str) -> SseReader {
        SseReader {
            path: path.to_owned(),
            host: host.to_owned(),
            raw: BytesMut::with_capacity(16 * 1024),
            left: 0,
            crlf: false,
        }
    }

    /// The request for a stream of `destination`.
    pub(crate) fn request(&self, destination: &str) -> Vec<u8> {
        let destination: String = destination
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!(
            "GET {}?destination={destination} HTTP/1.1\r\nHost: {}\r\n\
             Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
            self.path, self.host
        )
        .into_bytes()
    }

    /// Reads the response's head (200, chunked) and its first block (`retry`, the stream's
    /// id): the stream is subscribed from then on.
    pub(crate) async fn open(
        &mut self,
        read: &mut OwnedReadHalf,
        out: &mut BytesMut,
    ) -> Result<()> {
        let end = loop {
            if let Some(at) = find(&self.raw, b"\r\n\r\n") {
                break at;
            }
            if self.raw.len() > MAX_HEAD {
                bail!("the SSE response's head is larger than {MAX_HEAD} bytes");
            }
            if read.read_buf(&mut self.raw).await? == 0 {
                bail!("the server closed the SSE request before answering");
            }
        };
        let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
        let status = head.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            let body = String::from_utf8_lossy(&self.raw[end + 4..])
                .trim()
                .to_owned();
            bail!("the SSE request was answered {status}: {body}");
        }
        if !head.contains("transfer-encoding: chunked") {
            bail!("the SSE response is not chunked: {head}");
        }
        self.raw.advance(end + 4);
        loop {
            self.dechunk(out)?;
            if let Some(at) = find(out, b"\n\n") {
                out.advance(at + 2);
                return Ok(());
            }
            let n = read.read_buf(&mut self.raw).await.context("reading SSE")?;
            if n == 0 {
                bail!("the SSE stream ended before its first block");
            }
        }
    }

    /// Reads more of the body into `out`. `Ok(false)` when the stream ended.
    pub(crate) async fn read(
        &mut self,
        read: &mut OwnedReadHalf,
        out: &mut BytesMut,
    ) -> Result<bool> {
        self.raw.reserve(16 * 1024);
        if read.read_buf(&mut self.raw).await? == 0 {
            return Ok(false);
        }
        Ok(!self.dechunk(out)?)
    }

    /// Moves the chunks' data from `raw` to `out`; true at the last (empty) chunk.
    fn dechunk(&mut self, out: &mut BytesMut) -> Result<bool> {
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
                return Ok(true);
            }
            self.left = size;
        }
    }
}

/// The next whole event in `buf` as a MESSAGE (`message-id` its id, the body its data);
/// comments and blocks without data are skipped.
pub(crate) fn next_event(buf: &mut BytesMut) -> Option<Frame> {
    loop {
        let at = find(buf, b"\n\n")?;
        let block = buf.split_to(at + 2).freeze();
        let mut frame = Frame::new(Command::Message);
        let mut data: Option<BytesMut> = None;
        for line in block[..at].split(|&b| b == b'\n') {
            if let Some(value) = line.strip_prefix(b"data: ") {
                let data = data.get_or_insert_with(BytesMut::new);
                if !data.is_empty() {
                    data.extend_from_slice(b"\n");
                }
                data.extend_from_slice(value);
            } else if let Some(id) = line.strip_prefix(b"id: ") {
                frame = frame.with_header("message-id", String::from_utf8_lossy(id).as_ref());
            }
        }
        if let Some(data) = data {
            return Some(frame.with_body(data.freeze()));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_events() {
        let mut sse = SseReader::new("/sse", "h");
        let mut out = BytesMut::new();
        sse.raw
            .extend_from_slice(b"6\r\nid: 1\n\r\n11\r\ndata: hello\n\n: x\n\n\r\n5\r\ndata:");
        assert!(!sse.dechunk(&mut out).unwrap());
        let event = next_event(&mut out).unwrap();
        assert_eq!(
            (event.header("message-id"), &event.body[..]),
            (Some("1"), &b"hello"[..])
        );
        assert!(
            next_event(&mut out).is_none(),
            "a comment, then half an event"
        );
        sse.raw.extend_from_slice(b"\r\n4\r\n a\n\n\r\n0\r\n\r\n");
        assert!(sse.dechunk(&mut out).unwrap(), "the last chunk");
        assert_eq!(&next_event(&mut out).unwrap().body[..], b"a");
    }
}
