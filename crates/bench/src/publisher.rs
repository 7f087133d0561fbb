//! A publishing connection: stamps, paces and sends SEND frames within its flow-control window,
//! and watches its inbound side for an ERROR.

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use bytes::{BufMut, Bytes, BytesMut};
use stompbox_codec::{Command, Version, write_body_head, write_command, write_header};

use crate::{
    body::{Stamp, now_ns, templates},
    flow::Flow,
    opts::{Amount, Load},
    transport::{FrameRx, FrameTx, describe},
};

/// Frames fed before a flush when sending back to back: one write carries many frames.
const FLUSH_EVERY: u64 = 32;

/// What one publisher sends: message `i` goes to destination `(index + i) % len` with sequence
/// number `i / len` (consecutive per destination).
pub(crate) struct Plan {
    pub(crate) index: usize,
    pub(crate) destinations: Arc<Vec<String>>,
    pub(crate) load: Load,
    /// Run start, ns since the epoch: pacing schedules from it.
    pub(crate) start_ns: u64,
    /// With `--persistent`: the RECEIPTs received so far (counted by [`drain`]).
    pub(crate) receipts: Option<Arc<Receipts>>,
}

/// RECEIPTs a persistent publisher has received, and a wake-up for a publisher waiting on them.
#[derive(Default)]
pub(crate) struct Receipts {
    count: std::sync::atomic::AtomicU64,
    arrived: tokio::sync::Notify,
}

impl Receipts {
    fn count(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until fewer than `window` of the first `sent` messages are unreceipted; false if
    /// the run stopped first.
    async fn wait_window(&self, sent: u64, window: u64, stop: &mut StopSignal) -> bool {
        loop {
            let arrived = self.arrived.notified();
            if sent - self.count().min(sent) < window {
                return true;
            }
            tokio::select! {
                () = arrived => {}
                _ = stop.changed() => return false,
            }
        }
    }
}

type StopSignal = tokio::sync::watch::Receiver<bool>;

/// Sends the plan's messages; returns how many it sent (and its sender, kept open until the
/// run ends).
pub(crate) async fn publish(plan: Plan, mut tx: FrameTx, flow: Arc<Flow>) -> (u64, FrameTx) {
    match publish_inner(&plan, &mut tx, &flow).await {
        Ok(sent) => (sent, tx),
        Err((sent, e)) => {
            flow.fail(format!("publisher {}: {e:#}", plan.index));
            (sent, tx)
        }
    }
}

async fn publish_inner(
    plan: &Plan,
    tx: &mut FrameTx,
    flow: &Flow,
) -> std::result::Result<u64, (u64, anyhow::Error)> {
    let load = &plan.load;
    let heads: Vec<BytesMut> = plan
        .destinations
        .iter()
        .map(|d| send_head(d, load.body, load.persistent))
        .collect();
    let bodies = templates(load.body, load.padding);
    let publishers = load.publishers as u64;
    // Message i of publisher p is due at start + (i * P + p) / rate: publishers interleave.
    let interval_ns = load.rate.map(|rate| 1e9 / rate);
    let (limit, deadline_ns) = match load.amount {
        Amount::Messages(n) => (n, u64::MAX),
        Amount::Duration(d) => (u64::MAX, plan.start_ns + d.as_nanos() as u64),
    };
    let mut stop = flow.stop_signal();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut unflushed = 0u64;
    let mut i = 0u64;
    let mut slowest = 0u64;
    while i < limit {
        if *stop.borrow_and_update() {
            break;
        }
        let due_ns = match interval_ns {
            Some(interval) => {
                plan.start_ns + ((i * publishers + plan.index as u64) as f64 * interval) as u64
            }
            None => now_ns(),
        };
        if due_ns >= deadline_ns || now_ns() >= deadline_ns {
            break;
        }
        // `slowest` only grows, so a stale value is a safe lower bound: re-read the shared
        // counters (S cache lines for fan-out) only when the stale one would block.
        if i - slowest.min(i) >= load.window {
            slowest = flow.slowest(plan.index);
            if i - slowest.min(i) >= load.window {
                flush(tx, &mut unflushed).await.map_err(|e| (i, e))?;
                if !flow.wait_window(plan.index, i, load.window).await {
                    break;
                }
                slowest = flow.slowest(plan.index);
            }
        }
        if let Some(receipts) = &plan.receipts
            && i - receipts.count().min(i) >= load.window
        {
            flush(tx, &mut unflushed).await.map_err(|e| (i, e))?;
            if !receipts.wait_window(i, load.window, &mut stop).await {
                break;
            }
        }
        let now = now_ns();
        if due_ns > now {
            flush(tx, &mut unflushed).await.map_err(|e| (i, e))?;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_nanos(due_ns - now)) => {}
                _ = stop.changed() => break,
            }
        }
        let destination = (plan.index + i as usize) % heads.len();
        let frame = frame(
            &mut buf,
            &heads[destination],
            &bodies[i as usize % bodies.len()],
            Stamp {
                publisher: plan.index as u32,
                seq: i / heads.len() as u64,
                scheduled_ns: due_ns,
                sent_ns: now_ns(),
            },
        );
        tx.feed(frame).await.map_err(|e| (i, e))?;
        unflushed += 1;
        i += 1;
        // Paced: flush unless the next message is already due (a publisher catching up on its
        // schedule batches like an unthrottled one).
        let next_due_later = interval_ns.is_some_and(|interval| {
            let next =
                plan.start_ns + ((i * publishers + plan.index as u64) as f64 * interval) as u64;
            next > now_ns()
        });
        if unflushed >= FLUSH_EVERY || next_due_later {
            flush(tx, &mut unflushed).await.map_err(|e| (i, e))?;
        }
    }
    flush(tx, &mut unflushed).await.map_err(|e| (i, e))?;
    Ok(i)
}

async fn flush(tx: &mut FrameTx, unflushed: &mut u64) -> Result<()> {
    if *unflushed > 0 {
        tx.flush().await?;
        *unflushed = 0;
    }
    Ok(())
}

/// Everything of a SEND to `destination` before its `body_len`-byte body, encoded once per
/// destination with the codec's own writers (so the destination is escaped as 1.2 says). A
/// `persistent` one asks for a RECEIPT (one id for all: receipt ids need not be unique).
fn send_head(destination: &str, body_len: usize, persistent: bool) -> BytesMut {
    let mut head = BytesMut::new();
    write_command(Command::Send, &mut head);
    let mut header = |name: &str, value: &str| {
        write_header(name, value, Command::Send, Version::V1_2, &mut head);
    };
    header("destination", destination);
    if persistent {
        header("persistent", "true");
        header("receipt", "r");
    }
    write_body_head(body_len, &mut head);
    head
}

/// One SEND frame: the head, the stamped body, the NUL.
fn frame(buf: &mut BytesMut, head: &[u8], body: &[u8], stamp: Stamp) -> Bytes {
    buf.reserve(head.len() + body.len() + 1);
    buf.put_slice(head);
    let at = buf.len();
    buf.put_slice(body);
    stamp.write(&mut buf[at..]);
    buf.put_u8(0);
    buf.split().freeze()
}

/// Reads what the broker sends a publisher: nothing but RECEIPTs (with `--persistent`, counted
/// into `receipts`) is expected, anything else (an ERROR) is a failure; over the floor every
/// other connection's messages arrive here too and are dropped.
pub(crate) async fn drain(
    index: usize,
    mut rx: FrameRx,
    raw: bool,
    receipts: Option<Arc<Receipts>>,
    flow: Arc<Flow>,
) {
    let mut stop = flow.stop_signal();
    loop {
        tokio::select! {
            read = rx.read_chunk() => match read {
                Ok(true) if raw => rx.clear(),
                Ok(true) => loop {
                    match rx.try_frame() {
                        Ok(None) => break,
                        Ok(Some(frame)) => match &receipts {
                            Some(r) if frame.command == Command::Receipt => {
                                r.count.fetch_add(1, std::sync::atomic::Ordering::Release);
                                r.arrived.notify_waiters();
                            }
                            _ => {
                                flow.fail(format!("publisher {index} received {}", describe(&frame)));
                                return;
                            }
                        },
                        Err(e) => {
                            flow.fail(format!("publisher {index}: {e:#}"));
                            return;
                        }
                    }
                },
                Ok(false) => {
                    if !*stop.borrow() {
                        flow.fail(format!("publisher {index}: connection closed by the server"));
                    }
                    return;
                }
                Err(e) => {
                    if !*stop.borrow() {
                        flow.fail(format!("publisher {index}: {e:#}"));
                    }
                    return;
                }
            },
            _ = stop.changed() => return,
        }
    }
}
