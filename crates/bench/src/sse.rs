//! A Server-Sent Events receiver, as a browser's `EventSource` is one: `GET PATH?destination=D`
//! over HTTP/1.1, the chunked body taken apart, and each event handed out as a MESSAGE frame
//! whose body is the event's data (the bench's bodies are one line of text), so the subscriber
//! checks it as any other delivery.

use anyhow::{Result, bail};
use bytes::{Buf, BytesMut};
use stompbox_codec::{Command, Frame};
use tokio::net::tcp::OwnedReadHalf;

use crate::chunked::{Chunked, encode_query, find};

/// The state of one stream: its request, and its response's chunks.
pub(crate) struct SseReader {
    path: String,
    host: String,
    chunked: Chunked,
}

impl SseReader {
    pub(crate) fn new(path: &str, host: &str) -> SseReader {
        SseReader {
            path: path.to_owned(),
            host: host.to_owned(),
            chunked: Chunked::default(),
        }
    }

    /// The request for a stream of `destination`.
    pub(crate) fn request(&self, destination: &str) -> Vec<u8> {
        format!(
            "GET {}?destination={} HTTP/1.1\r\nHost: {}\r\n\
             Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
            self.path,
            encode_query(destination),
            self.host
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
        let head = self.chunked.head(read, "200").await?;
        if !head.contains("transfer-encoding: chunked") {
            bail!("the SSE response is not chunked: {head}");
        }
        loop {
            self.chunked.dechunk(out)?;
            if let Some(at) = find(out, b"\n\n") {
                out.advance(at + 2);
                return Ok(());
            }
            if self.chunked.read(read, out).await? != Some(false) {
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
        Ok(self.chunked.read(read, out).await? == Some(false))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_messages_and_comments_are_skipped() {
        let mut out = BytesMut::from(&b"id: 1\ndata: hello\n\n: x\n\ndata: a\ndata: b\n\nda"[..]);
        let event = next_event(&mut out).unwrap();
        assert_eq!(
            (event.header("message-id"), &event.body[..]),
            (Some("1"), &b"hello"[..])
        );
        assert_eq!(&next_event(&mut out).unwrap().body[..], b"a\nb");
        assert!(next_event(&mut out).is_none(), "half an event");
    }
}
