//! [`TcpClient`]: a [`Client`] over a real TCP socket, every wait bounded.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::client::{Client, Transport};
use crate::{
    frames,
    wire::{SOCKET_WAIT, within},
};

/// A STOMP-over-TCP client.
pub type TcpClient = Client<TcpTransport>;

/// A TCP socket as a [`Transport`]: each send is one write, each receive one read.
#[derive(Debug)]
pub struct TcpTransport {
    stream: TcpStream,
}

impl Transport for TcpTransport {
    const WAIT: Duration = SOCKET_WAIT;

    async fn send(&mut self, bytes: Bytes) {
        self.stream.write_all(&bytes).await.expect("tcp write");
    }

    async fn recv(&mut self) -> Option<Bytes> {
        let mut chunk = vec![0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some(Bytes::from(chunk))
            }
        }
    }
}

impl Client<TcpTransport> {
    /// Opens a connection without sending anything.
    pub async fn open(addr: SocketAddr) -> TcpClient {
        let stream = within("tcp connect", TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        Client::new(TcpTransport { stream })
    }

    /// Opens a connection from source address `from` (e.g. `127.0.0.2`, to look like another
    /// client machine on loopback, or a non-loopback address of this machine).
    pub async fn open_from(from: std::net::IpAddr, addr: SocketAddr) -> TcpClient {
        let socket = match from {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("bind the source address");
        let stream = within("tcp connect", socket.connect(addr))
            .await
            .expect("tcp connect");
        Client::new(TcpTransport { stream })
    }

    /// Opens a connection, sends [`frames::connect`] and expects CONNECTED.
    pub async fn connect(addr: SocketAddr) -> TcpClient {
        let mut client = TcpClient::open(addr).await;
        client.handshake(frames::connect()).await;
        client
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.send_bytes(Bytes::copy_from_slice(bytes)).await;
    }

    /// The socket itself, for tests that need it raw.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.transport.stream
    }
}
