//! An in-memory transport: the two halves the broker's `serve` takes, the client's ends, and
//! [`TestClient`], a [`Client`] over them with the session's task and close reason.
//!
//! Both directions are bounded channels, so a client that stops reading really does stop the
//! broker's writes (after `capacity` batches), as a full socket would.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use stompbox_broker::{Broker, CloseReason, ConnectionInfo, Inbound, Outbound};
use stompbox_codec::{Frame, Item};
use tokio::task::JoinHandle;

use crate::client::{Client, DEFAULT_WAIT, Transport};
use crate::frames;

/// Channel capacity of the in-memory transport for [`TestClient::start`].
const DEFAULT_CAPACITY: usize = 64;

/// A STOMP client of a broker in the same process, its session served on a spawned task.
pub type TestClient = Client<MemoryTransport>;

/// The broker's read half: what the client sent.
#[derive(Debug)]
pub struct MemoryInbound(mpsc::Receiver<io::Result<Inbound>>);

/// The broker's write half: batches for the client.
#[derive(Debug)]
pub struct MemoryOutbound(mpsc::Sender<Outbound>);

/// The client's halves.
#[derive(Debug)]
pub struct ClientEnd {
    /// Chunks (or errors) for the broker to read. Dropping it is EOF.
    pub tx: mpsc::Sender<io::Result<Inbound>>,
    /// Batches the broker wrote. Ends when the broker drops its write half.
    pub rx: mpsc::Receiver<Outbound>,
}

/// A connected pair; each direction buffers about `capacity` chunks.
pub fn pair(capacity: usize) -> (ClientEnd, MemoryInbound, MemoryOutbound) {
    let (in_tx, in_rx) = mpsc::channel(capacity);
    let (out_tx, out_rx) = mpsc::channel(capacity);
    (
        ClientEnd {
            tx: in_tx,
            rx: out_rx,
        },
        MemoryInbound(in_rx),
        MemoryOutbound(out_tx),
    )
}

impl Stream for MemoryInbound {
    type Item = io::Result<Inbound>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}

fn closed(_: mpsc::SendError) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client end is gone")
}

impl Sink<Outbound> for MemoryOutbound {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(closed)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> io::Result<()> {
        Pin::new(&mut self.0).start_send(item).map_err(closed)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(closed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(closed)
    }
}

/// The client's side of an in-memory connection, and the task serving its session.
#[derive(Debug)]
pub struct MemoryTransport {
    /// Batches the broker wrote.
    rx: mpsc::Receiver<Outbound>,
    /// What the broker reads; `None` once the input was closed (EOF).
    tx: Option<mpsc::Sender<io::Result<Inbound>>>,
    /// Whether each batch received so far was flagged binary, in order.
    batches: Vec<bool>,
    session: Option<JoinHandle<CloseReason>>,
}

impl MemoryTransport {
    async fn send_inbound(&mut self, inbound: io::Result<Inbound>) {
        let tx = self.tx.as_mut().expect("input already closed");
        tx.send(inbound)
            .await
            .expect("the broker dropped its read half");
    }
}

impl Transport for MemoryTransport {
    const WAIT: Duration = DEFAULT_WAIT;

    async fn send(&mut self, bytes: Bytes) {
        self.send_inbound(Ok(Inbound::Data(bytes))).await;
    }

    async fn recv(&mut self) -> Option<Bytes> {
        let batch = self.rx.next().await?;
        assert_eq!(
            batch.binary,
            std::str::from_utf8(&batch.bytes).is_err(),
            "Outbound.binary must say whether the batch is valid UTF-8"
        );
        self.batches.push(batch.binary);
        Some(batch.bytes)
    }
}

impl Client<MemoryTransport> {
    /// Opens a connection (no frame sent yet).
    pub fn start(broker: &Broker) -> TestClient {
        TestClient::start_with_capacity(broker, DEFAULT_CAPACITY)
    }

    /// Opens a connection whose transport buffers `capacity` chunks each way: a small capacity
    /// makes a client that stops reading look like a full socket quickly.
    pub fn start_with_capacity(broker: &Broker, capacity: usize) -> TestClient {
        let (ClientEnd { tx, rx }, inbound, outbound) = pair(capacity);
        let broker = broker.clone();
        let session = tokio::spawn(async move {
            broker
                .serve(ConnectionInfo::memory(), inbound, outbound)
                .await
        });
        Client::new(MemoryTransport {
            rx,
            tx: Some(tx),
            batches: Vec::new(),
            session: Some(session),
        })
    }

    /// Connects with [`frames::connect`] (STOMP 1.2, no heart-beats) and checks CONNECTED.
    pub async fn connect(broker: &Broker) -> TestClient {
        TestClient::connect_with(broker, frames::connect()).await.0
    }

    /// Connects with `connect` and returns the CONNECTED frame; panics on anything else.
    pub async fn connect_with(broker: &Broker, connect: Frame) -> (TestClient, Frame) {
        let mut client = TestClient::start(broker);
        let connected = client.handshake(connect).await;
        (client, connected)
    }

    /// Sends a transport-level ping.
    pub async fn ping(&mut self) {
        self.send_bounded(Ok(Inbound::Ping)).await;
    }

    /// Makes the broker's next read fail with `error`, as a broken socket does.
    pub async fn send_error(&mut self, error: io::Error) {
        self.send_bounded(Err(error)).await;
    }

    async fn send_bounded(&mut self, inbound: io::Result<Inbound>) {
        let wait = self.wait();
        let send = self.transport.send_inbound(inbound);
        tokio::time::timeout(wait, send)
            .await
            .expect("the broker did not read our input in time");
    }

    /// Ends the input stream (EOF), as a peer closing its socket does.
    pub fn close_input(&mut self) {
        self.transport.tx = None;
    }

    /// Whether each batch received so far was flagged binary, in order.
    pub fn batch_flags(&self) -> &[bool] {
        &self.transport.batches
    }

    /// The broker closes the connection with no further frame; returns why the session ended.
    pub async fn expect_closed(mut self) -> CloseReason {
        loop {
            match self.next_item().await {
                Some(Item::HeartBeat) => continue,
                Some(Item::Frame(f)) => panic!("expected the connection to close, got {f:?}"),
                None => break,
            }
        }
        self.close_reason().await
    }

    /// Reads whatever arrives until the connection closes; returns the frames and why.
    pub async fn drain_until_closed(mut self) -> (Vec<Frame>, CloseReason) {
        let mut frames = Vec::new();
        while let Some(item) = self.next_item().await {
            if let Item::Frame(f) = item {
                frames.push(f);
            }
        }
        (frames, self.close_reason().await)
    }

    /// Waits (bounded) for the session task and returns its [`CloseReason`].
    pub async fn close_reason(&mut self) -> CloseReason {
        let handle = (self.transport.session.take()).expect("close reason already taken");
        tokio::time::timeout(self.wait(), handle)
            .await
            .expect("the session did not end in time")
            .expect("the session task panicked")
    }

    /// DISCONNECT with a receipt; checks the receipt, then that the connection closes.
    pub async fn disconnect(mut self) -> CloseReason {
        self.send_frame(frames::disconnect("bye")).await;
        self.expect_receipt("bye").await;
        self.expect_closed().await
    }
}
