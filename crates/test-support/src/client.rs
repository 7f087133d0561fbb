//! [`TestClient`]: a STOMP client over the in-memory transport, with bounded `expect_*` waits.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use stompbox_broker::{Broker, CloseReason, ConnectionInfo, Inbound, Outbound};
use stompbox_codec::{Command, Decoder, Frame, Item, Limits, Version, encode};
use tokio::task::JoinHandle;

use crate::frames;
use crate::memory::{self, ClientEnd};

/// How long an `expect_*` waits before panicking. Under paused time it costs nothing: the clock
/// jumps when every task is idle.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// Channel capacity of the in-memory transport for [`TestClient::start`].
const DEFAULT_CAPACITY: usize = 64;

/// One session served by a broker on a spawned task, seen from the client side.
#[derive(Debug)]
pub struct TestClient {
    tx: Option<futures::channel::mpsc::Sender<io::Result<Inbound>>>,
    rx: futures::channel::mpsc::Receiver<Outbound>,
    decoder: Decoder,
    buf: BytesMut,
    items: VecDeque<Item>,
    /// Batches received so far and whether each was flagged binary.
    batches: Vec<bool>,
    version: Version,
    closed: bool,
    session: Option<JoinHandle<CloseReason>>,
    wait: Duration,
}

impl TestClient {
    /// Opens a connection (no frame sent yet).
    pub fn start(broker: &Broker) -> TestClient {
        TestClient::start_with_capacity(broker, DEFAULT_CAPACITY)
    }

    /// Opens a connection whose transport buffers `capacity` chunks each way: a small capacity
    /// makes a client that stops reading look like a full socket quickly.
    pub fn start_with_capacity(broker: &Broker, capacity: usize) -> TestClient {
        let (ClientEnd { tx, rx }, inbound, outbound) = memory::pair(capacity);
        let broker = broker.clone();
        let session = tokio::spawn(async move {
            broker
                .serve(ConnectionInfo::memory(), inbound, outbound)
                .await
        });
        TestClient {
            tx: Some(tx),
            rx,
            decoder: Decoder::new(Limits::UNLIMITED),
            buf: BytesMut::new(),
            items: VecDeque::new(),
            batches: Vec::new(),
            version: Version::V1_2,
            closed: false,
            session: Some(session),
            wait: DEFAULT_WAIT,
        }
    }

    /// Connects with [`frames::connect`] (STOMP 1.2, no heart-beats) and checks CONNECTED.
    pub async fn connect(broker: &Broker) -> TestClient {
        TestClient::connect_with(broker, frames::connect()).await.0
    }

    /// Connects with `connect` and returns the CONNECTED frame; panics on anything else.
    pub async fn connect_with(broker: &Broker, connect: Frame) -> (TestClient, Frame) {
        let mut client = TestClient::start(broker);
        client.send_frame(connect).await;
        let connected = client.expect_frame(Command::Connected).await;
        if let Some(v) = connected.header("version") {
            client.version = v.parse().expect("CONNECTED names a known version");
            client.decoder.set_version(client.version);
        }
        (client, connected)
    }

    /// Changes how long `expect_*` waits.
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Sends a frame, escaped for the negotiated version.
    pub async fn send_frame(&mut self, frame: Frame) {
        let mut bytes = BytesMut::new();
        encode(&frame, self.version, &mut bytes);
        self.send_bytes(bytes.freeze()).await;
    }

    /// Sends raw bytes as one chunk (use it for malformed input or split frames).
    pub async fn send_bytes(&mut self, bytes: impl Into<Bytes>) {
        self.send_inbound(Inbound::Data(bytes.into())).await;
    }

    /// Sends a transport-level ping.
    pub async fn ping(&mut self) {
        self.send_inbound(Inbound::Ping).await;
    }

    async fn send_inbound(&mut self, inbound: Inbound) {
        let tx = self.tx.as_mut().expect("input already closed");
        tokio::time::timeout(self.wait, tx.send(Ok(inbound)))
            .await
            .expect("the broker did not read our input in time")
            .expect("the broker dropped its read half");
    }

    /// Makes the broker's next read fail with `error`, as a broken socket does.
    pub async fn send_error(&mut self, error: io::Error) {
        let tx = self.tx.as_mut().expect("input already closed");
        tokio::time::timeout(self.wait, tx.send(Err(error)))
            .await
            .expect("the broker did not read our input in time")
            .expect("the broker dropped its read half");
    }

    /// Ends the input stream (EOF), as a peer closing its socket does.
    pub fn close_input(&mut self) {
        self.tx = None;
    }

    /// The next frame or heart-beat; `None` once the broker closed the connection.
    pub async fn next_item(&mut self) -> Option<Item> {
        let wait = self.wait;
        tokio::time::timeout(wait, self.next_item_unbounded())
            .await
            .unwrap_or_else(|_| panic!("nothing received within {wait:?}"))
    }

    async fn next_item_unbounded(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Some(item);
            }
            if self.closed {
                return None;
            }
            match self.rx.next().await {
                Some(batch) => {
                    self.check_binary_flag(&batch);
                    self.batches.push(batch.binary);
                    self.buf.extend_from_slice(&batch.bytes);
                    while let Some(item) = self
                        .decoder
                        .decode(&mut self.buf)
                        .expect("the broker sent undecodable bytes")
                    {
                        self.items.push_back(item);
                    }
                }
                None => self.closed = true,
            }
        }
    }

    fn check_binary_flag(&self, batch: &Outbound) {
        assert_eq!(
            batch.binary,
            std::str::from_utf8(&batch.bytes).is_err(),
            "Outbound.binary must say whether the batch is valid UTF-8"
        );
    }

    /// Whether each batch received so far was flagged binary, in order.
    pub fn batch_flags(&self) -> &[bool] {
        &self.batches
    }

    /// The next frame, skipping heart-beats; panics unless it is a `command` frame.
    pub async fn expect_frame(&mut self, command: Command) -> Frame {
        loop {
            match self.next_item().await {
                Some(Item::HeartBeat) => continue,
                Some(Item::Frame(f)) if f.command == command => return f,
                Some(Item::Frame(f)) => panic!("expected {command}, got {f:?}"),
                None => panic!("expected {command}, the connection closed"),
            }
        }
    }

    /// The next item must be a heart-beat EOL.
    pub async fn expect_heartbeat(&mut self) {
        match self.next_item().await {
            Some(Item::HeartBeat) => {}
            other => panic!("expected a heart-beat, got {other:?}"),
        }
    }

    /// The next frame is ERROR with this `message` header; returns it.
    pub async fn expect_error(&mut self, message: &str) -> Frame {
        let error = self.expect_frame(Command::Error).await;
        assert_eq!(
            error.header("message"),
            Some(message),
            "ERROR frame: {error:?}"
        );
        error
    }

    /// The next frame is RECEIPT for `receipt`.
    pub async fn expect_receipt(&mut self, receipt: &str) {
        let frame = self.expect_frame(Command::Receipt).await;
        assert_eq!(frame.header("receipt-id"), Some(receipt));
    }

    /// The next frame is a MESSAGE; returns it.
    pub async fn expect_message(&mut self) -> Frame {
        self.expect_frame(Command::Message).await
    }

    /// Nothing but heart-beats arrives during `duration`, and the connection stays open.
    pub async fn expect_no_frame(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            match tokio::time::timeout_at(deadline, self.next_item_unbounded()).await {
                Err(_) => return,
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(other) => panic!("expected nothing for {duration:?}, got {other:?}"),
            }
        }
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
        let handle = self.session.take().expect("close reason already taken");
        tokio::time::timeout(self.wait, handle)
            .await
            .expect("the session did not end in time")
            .expect("the session task panicked")
    }

    /// Subscribes with a receipt and waits for it, so the subscription is in effect on return.
    pub async fn subscribe(&mut self, id: &str, destination: &str) {
        let receipt = format!("sub-{id}");
        self.send_frame(
            frames::subscribe(id, destination).with_header("receipt", receipt.as_str()),
        )
        .await;
        self.expect_receipt(&receipt).await;
    }

    /// Sends `frame` asking for receipt `receipt` and waits for it: the frame's effect is done
    /// on return. The next frame must be that RECEIPT.
    pub async fn send_with_receipt(&mut self, frame: Frame, receipt: &str) {
        self.send_frame(frame.with_header("receipt", receipt)).await;
        self.expect_receipt(receipt).await;
    }

    /// Subscribes with `frame` (any SUBSCRIBE, e.g. with `ack` or `prefetch-count`), with a
    /// receipt, and waits for it.
    pub async fn subscribe_with(&mut self, frame: Frame) {
        let receipt = format!("sub-{}", frame.header("id").unwrap_or_default());
        self.send_with_receipt(frame, &receipt).await;
    }

    /// DISCONNECT with a receipt; checks the receipt, then that the connection closes.
    pub async fn disconnect(mut self) -> CloseReason {
        self.send_frame(frames::disconnect("bye")).await;
        self.expect_receipt("bye").await;
        self.expect_closed().await
    }
}
