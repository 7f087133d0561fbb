//! A raw HTTP/1.0 client for the server's SSE and publish endpoints: HTTP/1.0, so that a stream's body
//! arrives as the server writes it, without chunked encoding.

use std::net::SocketAddr;

use crate::wire::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request's headers.
pub type Headers<'a> = &'a [(&'a str, &'a str)];

/// One HTTP/1.0 exchange: the response's status and head, then its body as it comes.
pub struct Exchange {
    /// The response's status code.
    pub status: u16,
    /// The head, lowercased.
    pub head: String,
    socket: TcpStream,
    body: Vec<u8>,
}

/// One SSE event.
#[derive(Debug, PartialEq)]
pub struct Event {
    /// Its `id` field.
    pub id: String,
    /// Its `event` field.
    pub event: String,
    /// Its `data` lines, joined with LF.
    pub data: String,
}

/// Sends `method target` as HTTP/1.0 with `headers` (and a `content-length` for a POST) and
/// `body` on a connection of its own, and reads the response's head.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Exchange {
    within("an HTTP response head", async {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let mut head = format!("{method} {target} HTTP/1.0\r\nHost: {addr}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if method == "POST" && !headers.iter().any(|(n, _)| *n == "content-length") {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(body).await.unwrap();
        let mut received = Vec::new();
        let end = loop {
            if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let mut chunk = [0; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the head: {received:?}");
            received.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(received[..end].to_vec()).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Exchange {
            status,
            head: head.to_ascii_lowercase(),
            socket,
            body: received[end + 4..].to_vec(),
        }
    })
    .await
}

impl Exchange {
    /// The rest of the body, up to the connection's close.
    pub async fn rest(mut self) -> String {
        let read = self.socket.read_to_end(&mut self.body);
        within("the end of a body", read).await.unwrap();
        String::from_utf8(self.body).unwrap()
    }

    /// The body's next block (up to a blank line), comments included.
    pub async fn block(&mut self) -> String {
        within("an SSE block", async {
            loop {
                if let Some(at) = self.body.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = self.body.drain(..at + 2).collect();
                    return String::from_utf8(block[..at].to_vec()).unwrap();
                }
                let mut chunk = [0; 4096];
                let n = self.socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the stream ended: {:?}", self.body);
                self.body.extend_from_slice(&chunk[..n]);
            }
        })
        .await
    }

    /// The next event, skipping comments.
    pub async fn event(&mut self) -> Event {
        loop {
            let block = self.block().await;
            if block.starts_with(':') {
                continue;
            }
            let mut event = Event {
                id: String::new(),
                event: String::new(),
                data: String::new(),
            };
            let mut data = Vec::new();
            for line in block.lines() {
                let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                match field {
                    "id" => event.id = value.to_owned(),
                    "event" => event.event = value.to_owned(),
                    "data" => data.push(value),
                    other => panic!("unexpected field {other:?} in {block:?}"),
                }
            }
            event.data = data.join("\n");
            return event;
        }
    }
}

/// `/sse?destination=...` for `destinations`, each encoded.
pub fn sse_path(destinations: &[&str]) -> String {
    let query: Vec<String> = destinations
        .iter()
        .map(|d| format!("destination={}", d.replace('/', "%2F")))
        .collect();
    format!("/sse?{}", query.join("&"))
}
