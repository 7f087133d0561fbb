//! STOMP over SockJS's XHR streaming transport, as `sockjs-client` falls back to where
//! WebSocket is blocked: one long `POST PREFIX/000/SESSION/xhr_streaming` response carries the
//! server's frames (`a["..."]` lines), reopened on the same connection whenever the server
//! ends it (`sockjs.streaming_bytes_limit`), and each batch of client frames is one
//! `POST .../xhr_send` on a second keep-alive connection.

use anyhow::{Result, bail};
use bytes::{Buf, BytesMut};
use tokio::{
    io::AsyncWriteExt,
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
};

use crate::chunked::{Chunked, find};

/// The receiving connection.
pub(crate) struct XhrStream {
    chunked: Chunked,
    /// Its write half, to reopen the stream.
    write: OwnedWriteHalf,
    /// `POST .../xhr_streaming`.
    request: Vec<u8>,
    /// Body bytes not yet split into lines.
    lines: BytesMut,
}

impl XhrStream {
    /// Sends the streaming request and reads up to the session's open frame (`o`).
    pub(crate) async fn open(
        read: &mut OwnedReadHalf,
        mut write: OwnedWriteHalf,
        path: &str,
        host: &str,
    ) -> Result<XhrStream> {
        let request = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n");
        write.write_all(request.as_bytes()).await?;
        let mut stream = XhrStream {
            chunked: Chunked::default(),
            write,
            request: request.into_bytes(),
            lines: BytesMut::new(),
        };
        stream.chunked.head(read, "200").await?;
        loop {
            while let Some(line) = stream.line() {
                match line.first() {
                    Some(b'o') => return Ok(stream),
                    Some(b'h') => {}
                    _ => bail!(
                        "expected SockJS's open frame, got {:?}",
                        String::from_utf8_lossy(&line)
                    ),
                }
            }
            if stream.chunked.read(read, &mut stream.lines).await? != Some(false) {
                bail!("the xhr_streaming response ended before its open frame");
            }
        }
    }

    /// Reads more, appending the STOMP bytes of every `a[...]` frame to `out`; `Ok(false)`
    /// once the session is closed.
    pub(crate) async fn read(
        &mut self,
        read: &mut OwnedReadHalf,
        out: &mut BytesMut,
    ) -> Result<bool> {
        loop {
            let ended = match self.chunked.read(read, &mut self.lines).await? {
                None => return Ok(false),
                Some(ended) => ended,
            };
            let before = out.len();
            while let Some(line) = self.line() {
                match line.first() {
                    Some(b'a') => {
                        let chunks: Vec<String> = serde_json::from_slice(&line[1..])?;
                        for chunk in chunks {
                            out.extend_from_slice(chunk.as_bytes());
                        }
                    }
                    Some(b'c') => bail!(
                        "SockJS closed the session: {}",
                        String::from_utf8_lossy(&line)
                    ),
                    _ => {}
                }
            }
            if ended {
                // The response reached the server's byte limit: the next one goes on.
                self.write.write_all(&self.request).await?;
                self.chunked.head(read, "200").await?;
            }
            if out.len() > before {
                return Ok(true);
            }
        }
    }

    /// The next whole line of the body, without its newline.
    fn line(&mut self) -> Option<BytesMut> {
        let at = find(&self.lines, b"\n")?;
        let line = self.lines.split_to(at);
        self.lines.advance(1);
        Some(line)
    }
}

/// The sending connection: frames fed are sent together by `flush`, one `xhr_send`.
pub(crate) struct XhrSender {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    chunked: Chunked,
    path: String,
    host: String,
    pending: Vec<String>,
}

impl XhrSender {
    pub(crate) fn new(
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
        path: String,
        host: String,
    ) -> Self {
        XhrSender {
            read,
            write,
            chunked: Chunked::default(),
            path,
            host,
            pending: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, frame: &[u8]) -> Result<()> {
        self.pending.push(String::from_utf8(frame.to_vec())?);
        Ok(())
    }

    /// `POST .../xhr_send` with what was fed, answered 204.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(&self.pending)?;
        self.pending.clear();
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.path,
            self.host,
            body.len()
        );
        self.write.write_all(request.as_bytes()).await?;
        self.chunked.head(&mut self.read, "204").await?;
        Ok(())
    }

    pub(crate) async fn close(&mut self) {
        let _ = self.write.shutdown().await;
    }
}
