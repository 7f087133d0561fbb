//! [`Client`]: one STOMP test client over any [`Transport`] (in memory, TCP, WebSocket), with
//! bounded `expect_*` waits. What differs per transport (how to connect, raw socket access,
//! the in-memory session's close reason) is in `memory.rs`, `tcp.rs` and `ws.rs`.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use stompbox_codec::{Command, Decoder, Frame, Item, Limits, Version, encode};

use crate::frames;

/// How long an in-memory client's `expect_*` waits before panicking. Under paused time it
/// costs nothing: the clock jumps when every task is idle.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// How a [`Client`] moves bytes: one chunk out, one chunk in.
pub trait Transport: Send {
    /// How long the client waits for anything by default.
    const WAIT: Duration;

    /// Sends `bytes` as one chunk (one WebSocket message, one TCP write, one inbound chunk).
    fn send(&mut self, bytes: Bytes) -> impl Future<Output = ()> + Send;

    /// The next chunk the broker wrote; `None` once the connection is closed.
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
}

/// A STOMP client over transport `T`. Every wait is bounded and panics when it runs out.
#[derive(Debug)]
pub struct Client<T> {
    pub(crate) transport: T,
    decoder: Decoder,
    buf: BytesMut,
    items: VecDeque<Item>,
    version: Version,
    closed: bool,
    heartbeats: usize,
    wait: Duration,
}

impl<T: Transport> Client<T> {
    /// A client over `transport`, nothing sent yet.
    pub fn new(transport: T) -> Client<T> {
        Client {
            transport,
            decoder: Decoder::new(Limits::UNLIMITED),
            buf: BytesMut::new(),
            items: VecDeque::new(),
            version: Version::V1_2,
            closed: false,
            heartbeats: 0,
            wait: T::WAIT,
        }
    }

    /// Sends `connect` and returns the CONNECTED frame (panics on anything else); frames are
    /// escaped and decoded for the version it names from then on.
    pub async fn handshake(&mut self, connect: Frame) -> Frame {
        self.send_frame(connect).await;
        let connected = self.expect_frame(Command::Connected).await;
        if let Some(v) = connected.header("version") {
            self.version = v.parse().expect("CONNECTED names a known version");
            self.decoder.set_version(self.version);
        }
        connected
    }

    /// How long `expect_*` waits.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Changes how long `expect_*` waits.
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Sends a frame (or a reference to one), escaped for the negotiated version.
    pub async fn send_frame(&mut self, frame: impl Borrow<Frame>) {
        let mut bytes = BytesMut::new();
        encode(frame.borrow(), self.version, &mut bytes);
        self.send_bytes(bytes.freeze()).await;
    }

    /// Sends raw bytes as one chunk (use it for malformed input or split frames).
    pub async fn send_bytes(&mut self, bytes: impl Into<Bytes>) {
        let wait = self.wait;
        tokio::time::timeout(wait, self.transport.send(bytes.into()))
            .await
            .unwrap_or_else(|_| panic!("the broker did not read our input within {wait:?}"));
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
            match self.transport.recv().await {
                Some(chunk) => {
                    self.buf.extend_from_slice(&chunk);
                    // An EOL right after a frame in the same chunk is that frame's trailer
                    // (`NUL EOL`, the 1.2 grammar's `*( EOL )`), not a heart-beat.
                    let mut after_frame = false;
                    while let Some(item) = self
                        .decoder
                        .decode(&mut self.buf)
                        .expect("the broker sent bytes that are not STOMP")
                    {
                        let trailer = after_frame && item == Item::HeartBeat;
                        after_frame = matches!(item, Item::Frame(_));
                        if !trailer {
                            self.items.push_back(item);
                        }
                    }
                }
                None => self.closed = true,
            }
        }
    }

    /// The next frame, skipping heart-beats; `None` once the connection closes.
    pub async fn try_recv(&mut self) -> Option<Frame> {
        loop {
            match self.next_item().await? {
                Item::HeartBeat => self.heartbeats += 1,
                Item::Frame(frame) => return Some(frame),
            }
        }
    }

    /// The next frame, skipping heart-beats; panics if the connection closes first.
    pub async fn recv(&mut self) -> Frame {
        self.try_recv()
            .await
            .expect("the connection closed before a frame arrived")
    }

    /// Heart-beats skipped so far by [`Client::try_recv`] and what uses it ([`Client::recv`],
    /// [`Client::expect_frame`] and the `expect_*` helpers built on it).
    pub fn heartbeats(&self) -> usize {
        self.heartbeats
    }

    /// The next frame, skipping heart-beats; panics unless it is a `command` frame.
    pub async fn expect_frame(&mut self, command: Command) -> Frame {
        match self.try_recv().await {
            Some(f) if f.command == command => f,
            Some(f) => panic!("expected {command}, got {f:?}"),
            None => panic!("expected {command}, the connection closed"),
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
}
