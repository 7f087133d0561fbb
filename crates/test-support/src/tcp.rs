//! [`TcpClient`]: a STOMP client over a real TCP socket, every wait bounded.

use std::net::SocketAddr;

use stompbox_codec::{Command, Frame};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    frames,
    wire::{FrameReader, encode, within},
};

/// A STOMP-over-TCP client.
#[derive(Debug)]
pub struct TcpClient {
    /// The socket, for tests that need it raw.
    pub stream: TcpStream,
    /// Frames decoded from what was read.
    pub reader: FrameReader,
}

impl TcpClient {
    /// Opens a connection without sending anything.
    pub async fn open(addr: SocketAddr) -> TcpClient {
        let stream = within("tcp connect", TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        TcpClient {
            stream,
            reader: FrameReader::default(),
        }
    }

    /// Opens a connection, sends [`frames::connect`] and expects CONNECTED.
    pub async fn connect(addr: SocketAddr) -> TcpClient {
        let mut client = TcpClient::open(addr).await;
        client.send_frame(&frames::connect()).await;
        client.expect_frame(Command::Connected).await;
        client
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        within("tcp write", self.stream.write_all(bytes))
            .await
            .expect("tcp write");
    }

    /// Writes an encoded frame.
    pub async fn send_frame(&mut self, frame: &Frame) {
        self.send(&encode(frame)).await;
    }

    /// The next frame, or `None` once the server closes the connection.
    pub async fn try_recv(&mut self) -> Option<Frame> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(frame) = self.reader.next_frame() {
                return Some(frame);
            }
            match within("tcp read", self.stream.read(&mut chunk)).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.reader.push(&chunk[..n]),
            }
        }
    }

    /// The next frame; panics if the connection closes first.
    pub async fn recv(&mut self) -> Frame {
        self.try_recv()
            .await
            .expect("connection closed before a frame arrived")
    }

    /// The next frame, which must be a `command`.
    pub async fn expect_frame(&mut self, command: Command) -> Frame {
        let frame = self.recv().await;
        assert_eq!(frame.command, command, "unexpected frame: {frame:?}");
        frame
    }

    /// Subscribes with a receipt and waits for it.
    pub async fn subscribe(&mut self, id: &str, destination: &str) {
        let receipt = format!("subscribe-{id}");
        self.send_frame(
            &frames::subscribe(id, destination).with_header("receipt", receipt.as_str()),
        )
        .await;
        let reply = self.expect_frame(Command::Receipt).await;
        assert_eq!(reply.header("receipt-id"), Some(receipt.as_str()));
    }
}
