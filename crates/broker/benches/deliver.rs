//! Allocations (and a rough time) per delivered MESSAGE on the fan-out hot path.
//!
//! Run: `cargo bench -p stompbox-broker --bench deliver` (add `-- --quick` for a short run,
//! `-- --only S B` for one cell, e.g. under `perf record`).
//!
//! One publisher and S subscribers on one `/topic`, all in-process on a current-thread runtime,
//! driven through the broker's transport seam with transports that allocate nothing per chunk:
//! the publisher's SEND frames are encoded before counting starts, and each subscriber's sink
//! only counts the frames it is given. So every allocation counted is the broker's: decoding
//! the SEND, routing, outboxes, encoding, batching. The publisher stays at most [`WINDOW`]
//! messages ahead of the slowest subscriber, as a socket's back-pressure would keep it.
//!
//! Prints, per (S, body size): allocations and bytes allocated per published message and per
//! delivery, and nanoseconds per delivery (a rough figure: one thread, no sockets, no syscalls;
//! see `docs/benchmarks.md` for what it leaves out).

use std::alloc::System;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::task::AtomicWaker;
use futures::{Sink, Stream};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use stompbox_broker::{Broker, ConnectionInfo, Inbound, Outbound};

/// Counts every allocation made in the process (no `unsafe` here: the workspace forbids it).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// (allocations incl. reallocations, bytes allocated incl. growth by reallocation) so far.
fn allocated() -> (u64, u64) {
    let s = GLOBAL.stats();
    let grown = s.bytes_reallocated.max(0) as usize;
    (
        (s.allocations + s.reallocations) as u64,
        (s.bytes_allocated + grown) as u64,
    )
}

/// How far (in messages) the publisher may run ahead of the slowest subscriber: well inside
/// the default outbox bound (1024 frames), so nobody is a slow consumer.
const WINDOW: usize = 64;
/// Bound on any wait of the bench: it stops by itself if the broker misbehaves.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Frames given to one subscriber's sink (counted by their NUL terminators).
#[derive(Default)]
struct Received {
    frames: AtomicUsize,
}

/// A sink that counts frames and wakes the publisher; allocates nothing.
struct CountingSink {
    received: Arc<Received>,
    progress: Arc<Progress>,
}

impl Sink<Outbound> for CountingSink {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Outbound) -> io::Result<()> {
        // memchr: a byte-by-byte count would cost as much as the broker's own work.
        let frames = memchr::memchr_iter(0, &item.bytes).count();
        self.received.frames.fetch_add(frames, Relaxed);
        self.progress.delivered.fetch_add(frames, Relaxed);
        self.progress.waker.wake();
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Deliveries so far, all subscribers together, and the publisher waiting for them.
#[derive(Default)]
struct Progress {
    delivered: AtomicUsize,
    waker: AtomicWaker,
}

/// The publisher's inbound: pre-encoded chunks, released while the subscribers keep up.
struct PacedChunks {
    chunks: std::vec::IntoIter<Bytes>,
    sent: usize,
    /// Subscribers on the topic: deliveries per message. The first chunk is CONNECT.
    subscribers: usize,
    base: usize,
    progress: Arc<Progress>,
    gate: Arc<AtomicUsize>,
}

impl Stream for PacedChunks {
    type Item = io::Result<Inbound>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // `gate` holds how many chunks may go; the bench opens it once subscribers are ready.
        let allowed = |this: &Self| {
            let published = this.sent.saturating_sub(1);
            let delivered = this.progress.delivered.load(Relaxed) - this.base;
            this.sent < this.gate.load(Relaxed)
                && (this.sent == 0 || published < WINDOW + delivered / this.subscribers)
        };
        if !allowed(&self) {
            self.progress.waker.register(cx.waker());
            if !allowed(&self) {
                return Poll::Pending;
            }
        }
        self.sent += 1;
        Poll::Ready(self.chunks.next().map(|c| Ok(Inbound::Data(c))))
    }
}

/// Inbound chunks given up front, then nothing until the session ends.
struct Scripted(Vec<Bytes>);

impl Stream for Scripted {
    type Item = io::Result<Inbound>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.pop() {
            Some(chunk) => Poll::Ready(Some(Ok(Inbound::Data(chunk)))),
            None => Poll::Pending,
        }
    }
}

const CONNECT: &[u8] = b"CONNECT\naccept-version:1.2\nhost:bench\nheart-beat:0,0\n\n\0";

fn send_frame(body: &[u8]) -> Bytes {
    let mut frame = format!(
        "SEND\ndestination:/topic/bench\ncontent-type:text/plain\ncontent-length:{}\n\n",
        body.len()
    )
    .into_bytes();
    frame.extend_from_slice(body);
    frame.push(0);
    Bytes::from(frame)
}

/// Polls `done` (yielding to the broker's tasks in between) until true or [`MAX_WAIT`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < MAX_WAIT, "timed out waiting for {what}");
        tokio::task::yield_now().await;
    }
}

struct Figures {
    allocs: u64,
    bytes: u64,
    elapsed: Duration,
}

/// One cell: `subscribers` on one topic, `messages` published with `body_len`-byte bodies.
async fn run(subscribers: usize, body_len: usize, messages: usize) -> Figures {
    let broker = Broker::new();
    let progress = Arc::new(Progress::default());
    let mut received = Vec::new();
    for i in 0..subscribers {
        let subscribe = format!("SUBSCRIBE\nid:{i}\ndestination:/topic/bench\nreceipt:r\n\n\0");
        // Popped from the end: CONNECT first.
        let inbound = Scripted(vec![Bytes::from(subscribe), Bytes::from_static(CONNECT)]);
        let r = Arc::new(Received::default());
        let sink = CountingSink {
            received: r.clone(),
            progress: progress.clone(),
        };
        received.push(r);
        let broker = broker.clone();
        tokio::spawn(async move { broker.serve(ConnectionInfo::memory(), inbound, sink).await });
    }
    // CONNECTED and RECEIPT: every subscription is in place.
    until("subscriptions", || {
        received.iter().all(|r| r.frames.load(Relaxed) == 2)
    })
    .await;

    let body: Vec<u8> = (0..body_len).map(|i| b'a' + (i % 26) as u8).collect();
    let mut chunks = vec![Bytes::from_static(CONNECT)];
    chunks.extend((0..messages).map(|_| send_frame(&body)));
    let gate = Arc::new(AtomicUsize::new(1));
    let publisher = PacedChunks {
        chunks: chunks.into_iter(),
        sent: 0,
        subscribers,
        base: progress.delivered.load(Relaxed),
        progress: progress.clone(),
        gate: gate.clone(),
    };
    let publisher_sink = CountingSink {
        received: Arc::new(Received::default()),
        progress: Arc::new(Progress::default()),
    };
    let publisher_received = publisher_sink.received.clone();
    let b = broker.clone();
    tokio::spawn(async move {
        b.serve(ConnectionInfo::memory(), publisher, publisher_sink)
            .await
    });
    until("CONNECTED", || publisher_received.frames.load(Relaxed) == 1).await;

    let (allocs, bytes) = allocated();
    let start = Instant::now();
    gate.store(usize::MAX, Relaxed);
    progress.waker.wake();
    until("deliveries", || {
        received
            .iter()
            .all(|r| r.frames.load(Relaxed) == 2 + messages)
    })
    .await;
    let elapsed = start.elapsed();
    let (allocs_after, bytes_after) = allocated();
    let figures = Figures {
        allocs: allocs_after - allocs,
        bytes: bytes_after - bytes,
        elapsed,
    };
    broker.shutdown().await;
    figures
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only S B`: one cell (for profiling).
    let only = args.iter().position(|a| a == "--only").map(|i| {
        let n = |k: usize| args.get(i + k).and_then(|v| v.parse::<usize>().ok());
        (n(1).expect("--only S B"), n(2).expect("--only S B"))
    });
    let deliveries_per_cell = if quick { 20_000 } else { 400_000 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "{:>4} {:>5} {:>8} | {:>12} {:>12} | {:>12} {:>12} | {:>10}",
        "S", "B", "messages", "allocs/pub", "bytes/pub", "allocs/dlv", "bytes/dlv", "ns/dlv"
    );
    for body_len in [64, 1024] {
        for subscribers in [1, 10, 100] {
            if only.is_some_and(|cell| cell != (subscribers, body_len)) {
                continue;
            }
            let messages = (deliveries_per_cell / subscribers).max(1_000);
            // A warm-up cell first: lazily built statics, the runtime's own buffers.
            runtime.block_on(run(subscribers, body_len, messages / 10));
            let f = runtime.block_on(run(subscribers, body_len, messages));
            let deliveries = (messages * subscribers) as f64;
            println!(
                "{:>4} {:>5} {:>8} | {:>12.2} {:>12.1} | {:>12.3} {:>12.1} | {:>10.1}",
                subscribers,
                body_len,
                messages,
                f.allocs as f64 / messages as f64,
                f.bytes as f64 / messages as f64,
                f.allocs as f64 / deliveries,
                f.bytes as f64 / deliveries,
                f.elapsed.as_nanos() as f64 / deliveries,
            );
        }
    }
}
