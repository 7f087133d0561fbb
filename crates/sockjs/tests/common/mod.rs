//! A test server with the protocol suite's services, and a raw HTTP/1.1 client that reads
//! streamed responses chunk by chunk. Every wait is bounded.

#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, time::Duration};

use axum::Router;
use stompbox_sockjs::{Config, Session, SockJs, handler_fn};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// Upper bound of any wait.
pub const WAIT: Duration = Duration::from_secs(10);

pub async fn echo(mut session: Session) {
    while let Some(message) = session.recv().await {
        if session.send(message).await.is_err() {
            break;
        }
    }
}

/// `/echo`, `/close`, `/disabled_websocket_echo`, `/cookie_needed_echo` with `config`.
pub async fn serve(config: Config) -> SocketAddr {
    let app = Router::new()
        .merge(SockJs::new(config.clone(), handler_fn(echo)).router("/echo"))
        .merge(
            SockJs::new(
                config.clone(),
                handler_fn(|s: Session| async move { s.close(3000, "Go away!") }),
            )
            .router("/close"),
        )
        .merge(
            SockJs::new(
                Config {
                    websocket: false,
                    ..config.clone()
                },
                handler_fn(echo),
            )
            .router("/disabled_websocket_echo"),
        )
        .merge(
            SockJs::new(
                Config {
                    cookie_needed: true,
                    ..config
                },
                handler_fn(echo),
            )
            .router("/cookie_needed_echo"),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A response whose body is read on demand.
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    chunked: bool,
    length: Option<usize>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next chunk of a chunked body (`None` at its end), or the whole of another body.
    pub async fn chunk(&mut self) -> Option<String> {
        tokio::time::timeout(WAIT, self.read_chunk())
            .await
            .expect("a chunk within the wait")
    }

    async fn read_chunk(&mut self) -> Option<String> {
        if !self.chunked {
            let mut body = Vec::new();
            match self.length {
                Some(0) => return None,
                Some(n) => {
                    body.resize(n, 0);
                    self.reader.read_exact(&mut body).await.ok()?;
                    self.length = Some(0);
                }
                None => {
                    self.reader.read_to_end(&mut body).await.ok()?;
                    if body.is_empty() {
                        return None;
                    }
                }
            }
            return Some(String::from_utf8(body).unwrap());
        }
        let mut line = String::new();
        self.reader.read_line(&mut line).await.ok()?;
        let size = usize::from_str_radix(line.trim(), 16).ok()?;
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).await.ok()?;
        data.truncate(size);
        (size > 0).then(|| String::from_utf8(data).unwrap())
    }

    /// The whole body.
    pub async fn body(mut self) -> String {
        let mut all = String::new();
        while let Some(chunk) = self.chunk().await {
            all.push_str(&chunk);
        }
        all
    }
}

/// Sends one request (`Connection: close`) and reads the response head.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    tokio::time::timeout(WAIT, send(addr, method, path, headers, body))
        .await
        .expect("a response head within the wait")
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let chunked = find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = find("content-length").and_then(|v| v.parse().ok());
    let length = match (status, method) {
        (204 | 304, _) | (_, "HEAD") => Some(0),
        _ => length,
    };
    Response {
        status,
        headers,
        reader,
        chunked,
        length,
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], "").await
}

pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(addr, "POST", path, &[], body).await
}

/// A fresh session path under `service`: `/<service>/000/<n>`.
pub fn session(service: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("/{service}/000/s{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
