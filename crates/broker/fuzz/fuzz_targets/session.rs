//! Whole STOMP sessions, mutated, against a running broker: one fresh broker per input, served
//! over an in-memory transport on a current-thread runtime whose clock is paused (timers fire as
//! soon as every task waits, so heart-beat and connect timeouts are reached at no cost, and a
//! hang shows up as a virtual timeout instead of a stall).
//!
//! Input layout: byte 0 holds flags, bytes 1..5 the chunk sizes to cycle through (0 sends a
//! transport ping, then one byte), the rest is what the fuzzed client sends.
//!
//! | byte 0 bits | meaning |
//! |---|---|
//! | 0–1 | a CONNECT sent first: none (the input must connect itself), 1.0, 1.1, 1.2 |
//! | 2   | that CONNECT asks for heart-beats (1 s both ways) |
//! | 3   | tight limits (frame, headers, subscriptions, destinations, queues, transactions) |
//! | 4–5 | the observer's version: 1.2, 1.0, 1.1, 1.2 |
//! | 6   | full queues drop their oldest message instead of refusing the SEND |
//!
//! Two sessions: the fuzzed one, and an observer subscribed to every topic (`/topic/#`) and to
//! `/queue/fuzz` before the fuzzed one starts. Checks, beyond "no panic" (libFuzzer aborts on a
//! panic in any task):
//! - everything the broker writes to either session decodes with a strict decoder (escaping
//!   right for the session's version, never half a frame), no header holds a NUL, nor a CR
//!   unless 1.2's `\r` escape wrote it, and each batch's `binary` flag says whether it is valid
//!   UTF-8;
//! - after its input ends the fuzzed session ends within bounded (virtual) time; an ERROR is
//!   its last frame, and a session closed for a protocol error sent an ERROR with that message;
//! - the observer is unaffected: no ERROR, still subscribed and served (a message it sends
//!   comes back), and it disconnects normally.
#![no_main]

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use stompbox_broker::{
    Broker, CloseReason, Config, ConnectionInfo, Inbound, Outbound, OverflowPolicy,
};
use stompbox_codec::{Command, Decoder, Frame, Item, Limits, Version};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Virtual time any one wait may take. Every timer of the default configuration is shorter
/// (connect 10 s, heart-beats at most 30 s × grace, writes 10 s), so reaching it is a hang.
const PATIENCE: Duration = Duration::from_secs(3600);

/// Chunks buffered each way, as a socket buffers a little.
const CAPACITY: usize = 16;

/// Longer inputs are skipped: the observer must not become a slow consumer (4,096 frames) of a
/// flood the fuzzer made, which would be a correct disconnect, not a bug. 16 KiB of SENDs fan
/// out to fewer than 1,000 frames.
const MAX_INPUT: usize = 16 * 1024;

struct Script<'a> {
    connect: Option<Version>,
    heart_beats: bool,
    tight: bool,
    observer: Version,
    drop_oldest: bool,
    sizes: &'a [u8],
    data: &'a [u8],
}

impl<'a> Script<'a> {
    fn parse(input: &'a [u8]) -> Option<Script<'a>> {
        if input.len() > MAX_INPUT {
            return None;
        }
        let (&flags, rest) = input.split_first()?;
        let (sizes, data) = rest.split_at(rest.len().min(4));
        let version = |bits: u8| match bits & 3 {
            1 => Version::V1_0,
            2 => Version::V1_1,
            _ => Version::V1_2,
        };
        Some(Script {
            connect: (flags & 3 != 0).then(|| version(flags)),
            heart_beats: flags & 4 != 0,
            tight: flags & 8 != 0,
            observer: version(flags >> 4),
            drop_oldest: flags & 64 != 0,
            sizes,
            data,
        })
    }

    /// What the fuzzed client sends, in order.
    fn chunks(&self) -> Vec<Inbound> {
        let mut out = Vec::new();
        if let Some(version) = self.connect {
            let beats = if self.heart_beats { "1000,1000" } else { "0,0" };
            out.push(Inbound::Data(connect_frame(version, beats)));
        }
        let sizes = if self.sizes.is_empty() {
            &[255][..]
        } else {
            self.sizes
        };
        let mut rest = self.data;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            if size == 0 {
                out.push(Inbound::Ping);
            }
            let (piece, tail) = rest.split_at(usize::from(size).clamp(1, rest.len()));
            out.push(Inbound::Data(Bytes::copy_from_slice(piece)));
            rest = tail;
        }
        out
    }

    fn config(&self) -> Config {
        let mut config = Config::default();
        if self.tight {
            config.max_frame_size_before_connect = 256;
            config.max_frame_size = 1024;
            config.max_body_size = 512;
            config.max_headers = 8;
            config.max_header_line = 128;
            config.max_subscriptions_per_session = 4;
            // The observer holds one wildcard subscription (`/topic/#`) and sends to
            // `/topic/fuzz.check`: within all three.
            config.max_destination_length = 64;
            config.max_topic_words = 4;
            config.max_wildcard_subscriptions = 3;
            config.queues.max_messages = 4;
            config.queues.max_bytes = 1024;
            config.queues.max_total_bytes = 2048;
            config.queues.max_queues = 4;
            config.queues.default_prefetch = 2;
            config.queues.max_prefetch = 4;
            config.queues.max_deliveries = 2;
            config.transactions.max_open = 2;
            config.transactions.max_frames = 4;
            config.transactions.max_bytes = 1024;
        }
        if self.drop_oldest {
            config.queues.overflow = OverflowPolicy::DropOldest;
        }
        config
    }
}

fn connect_frame(version: Version, heart_beat: &str) -> Bytes {
    let version = version.as_str();
    Bytes::from(format!(
        "CONNECT\naccept-version:{version}\nhost:fuzz\nheart-beat:{heart_beat}\n\n\0"
    ))
}

/// One connection to the broker: the client's ends, and the task serving the session (the same
/// seam `stompbox-test-support`'s `memory.rs` uses, without its client, to keep this build
/// small).
struct Connection {
    tx: Option<mpsc::Sender<io::Result<Inbound>>>,
    session: JoinHandle<CloseReason>,
    reader: JoinHandle<()>,
    frames: mpsc::UnboundedReceiver<Frame>,
}

impl Connection {
    fn open(broker: &Broker) -> Connection {
        let (tx, inbound) = mpsc::channel(CAPACITY);
        let (outbound, rx) = mpsc::channel::<Outbound>(CAPACITY);
        let outbound = outbound
            .sink_map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client end is gone"));
        let broker = broker.clone();
        let session = tokio::spawn(async move {
            (broker.serve(ConnectionInfo::memory(), inbound, outbound)).await
        });
        let (frames_tx, frames) = mpsc::unbounded();
        Connection {
            tx: Some(tx),
            session,
            reader: tokio::spawn(read_all(rx, frames_tx)),
            frames,
        }
    }

    /// Sends one chunk; false when the session no longer reads (it ended).
    async fn send(&mut self, inbound: Inbound) -> bool {
        let tx = self.tx.as_mut().expect("input open");
        match timeout(PATIENCE, tx.send(Ok(inbound))).await {
            Ok(sent) => sent.is_ok(),
            Err(_) => panic!("the broker neither read the next chunk nor ended the session"),
        }
    }

    async fn send_text(&mut self, text: &str) {
        assert!(
            self.send(Inbound::Data(Bytes::copy_from_slice(text.as_bytes())))
                .await
        );
    }

    /// EOF, then waits for the session and for its output to end; returns why it ended and
    /// every frame it wrote that was not taken yet.
    async fn close(mut self) -> (CloseReason, Vec<Frame>) {
        self.tx = None;
        let reason = within("the session to end", self.session).await;
        within("the session's output to end", self.reader).await;
        let mut frames = Vec::new();
        while let Ok(frame) = self.frames.try_recv() {
            frames.push(frame);
        }
        (reason, frames)
    }

    /// The next frame, which must not be an ERROR.
    async fn next_frame(&mut self) -> Frame {
        let frame = match timeout(PATIENCE, self.frames.next()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("the observer's connection closed"),
            Err(_) => panic!("the observer waited {PATIENCE:?} for a frame"),
        };
        assert_ne!(frame.command, Command::Error, "observer got {frame:?}");
        frame
    }

    /// Skips frames (deliveries of what the fuzzed session sent) up to RECEIPT `id`; returns
    /// the MESSAGE frames skipped.
    async fn until_receipt(&mut self, id: &str) -> Vec<Frame> {
        let mut messages = Vec::new();
        loop {
            let frame = self.next_frame().await;
            match frame.command {
                Command::Receipt if frame.header("receipt-id") == Some(id) => return messages,
                Command::Message => messages.push(frame),
                _ => {}
            }
        }
    }
}

async fn within<T>(what: &str, task: JoinHandle<T>) -> T {
    match timeout(PATIENCE, task).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("waiting for {what}: the task failed: {e}"),
        Err(_) => panic!("waited {PATIENCE:?} (virtual) for {what}"),
    }
}

/// Reads a connection's output to its end, decoding it as a strict client would (switching to
/// the version CONNECTED names), and forwards each frame. Panics if the broker wrote anything the
/// decoder refuses, flagged a batch wrongly, or stopped in the middle of a frame.
async fn read_all(mut rx: mpsc::Receiver<Outbound>, frames: mpsc::UnboundedSender<Frame>) {
    let mut decoder = Decoder::new(Limits::UNLIMITED);
    let mut buf = BytesMut::new();
    while let Some(batch) = rx.next().await {
        assert_eq!(
            batch.binary,
            std::str::from_utf8(&batch.bytes).is_err(),
            "Outbound.binary must say whether the batch is valid UTF-8"
        );
        buf.extend_from_slice(&batch.bytes);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Item::Frame(frame))) => {
                    // Checked here too, not only by the decoder: a subscriber that splits on NUL
                    // or on a lone CR must read the same headers we did.
                    let cr_escape =
                        decoder.version() == Version::V1_2 && frame.command.escapes_headers();
                    for (name, value) in frame.headers.iter() {
                        assert!(!name.contains('\0') && !value.contains('\0'), "{frame:?}");
                        assert!(cr_escape || !(name.contains('\r') || value.contains('\r')));
                    }
                    if frame.command == Command::Connected {
                        let version = frame.header("version").and_then(|v| v.parse().ok());
                        decoder.set_version(version.unwrap_or(Version::V1_0));
                    }
                    // The receiver is gone only once the fuzz case is over.
                    let _ = frames.unbounded_send(frame);
                }
                Ok(Some(Item::HeartBeat)) => {}
                Ok(None) => break,
                Err(e) => panic!(
                    "the broker wrote what a client cannot decode ({e}): {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            }
        }
    }
    assert!(
        buf.is_empty(),
        "the broker stopped in the middle of a frame: {buf:?}"
    );
}

/// An ERROR is the last frame, and only sessions the broker ended (not DISCONNECT, not EOF)
/// have one; a protocol error is announced with its own message.
fn check_ending(reason: &CloseReason, frames: &[Frame]) {
    let errors: Vec<usize> = (frames.iter().enumerate())
        .filter(|(_, f)| f.command == Command::Error)
        .map(|(i, _)| i)
        .collect();
    if let Some(&first) = errors.first() {
        assert_eq!(first, frames.len() - 1, "frames after an ERROR: {frames:?}");
        assert!(
            !matches!(
                reason,
                CloseReason::Disconnect | CloseReason::TransportClosed
            ),
            "ERROR sent, yet the session ended with {reason:?}"
        );
    }
    if let CloseReason::ProtocolError(message) = reason {
        let last = frames
            .last()
            .expect("an ERROR before a protocol-error close");
        assert_eq!(last.command, Command::Error, "{reason:?} without an ERROR");
        assert_eq!(last.header("message"), Some(message.as_str()));
    }
}

async fn run(script: Script<'_>) {
    let broker = Broker::builder()
        .config(script.config())
        .build()
        .expect("a valid configuration");

    let mut observer = Connection::open(&broker);
    observer
        .send_text(&format!(
            "CONNECT\naccept-version:{}\nhost:fuzz\n\n\0\
             SUBSCRIBE\nid:all\ndestination:/topic/#\n\n\0\
             SUBSCRIBE\nid:queue\ndestination:/queue/fuzz\nreceipt:ready\n\n\0",
            script.observer.as_str()
        ))
        .await;
    observer.until_receipt("ready").await;

    let mut fuzzed = Connection::open(&broker);
    for chunk in script.chunks() {
        if !fuzzed.send(chunk).await {
            break;
        }
    }
    let (reason, frames) = fuzzed.close().await;
    check_ending(&reason, &frames);

    // Still subscribed and served, whatever the fuzzed session did.
    observer
        .send_text(
            "SEND\ndestination:/topic/fuzz.check\nx-check:yes\nreceipt:check\n\nok\0\
             DISCONNECT\nreceipt:bye\n\n\0",
        )
        .await;
    let delivered = observer.until_receipt("check").await;
    assert!(
        delivered.iter().any(|m| m.header("x-check") == Some("yes")
            && m.header("destination") == Some("/topic/fuzz.check")),
        "the observer's own message did not come back"
    );
    observer.until_receipt("bye").await;
    let (reason, rest) = observer.close().await;
    assert_eq!(
        reason,
        CloseReason::Disconnect,
        "observer ended with {rest:?}"
    );
}

fuzz_target!(|input: &[u8]| {
    let Some(script) = Script::parse(input) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(run(script));
});
