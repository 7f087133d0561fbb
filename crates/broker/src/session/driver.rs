//! The task of one session: one `select!` loop over inbound chunks, the write in progress, the
//! outbox, the control channel, timers and shutdown; and the inbound side, chunks decoded into
//! frames for the state machine. This file does the I/O; protocol decisions are the state
//! machine's (`mod.rs`), carried out by `execute.rs` on the [`Conn`] (`conn.rs`).
//!
//! Writes never block reads: a write in flight is polled as one branch (its state lives here,
//! not in a dropped future, so every branch is cancel-safe). While a write is in flight,
//! deliveries wait in the bounded outbox; the next write takes up to one batch from it. Reading
//! pauses when the session's own replies pile up beyond `outbox.max_bytes`, so a peer that sends
//! without reading is slowed, then closed by `write_timeout`. While its `/app` handler queue is
//! full, the session stops decoding but goes on reading (heart-beats count) up to one
//! `max_frame_size` of waiting input.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures::{Sink, Stream, StreamExt};
use stompbox_codec::{DecodeError, Item};
use tokio::time::{Instant, sleep_until};

use super::conn::Conn;
use super::writer::MAX_BATCH_BYTES;
use crate::control::Control;
use crate::error::ProtocolError;
use crate::stats::{HEARTBEAT, frame_index};
use crate::{Accepted, Broker, CloseReason, ConnectionInfo, Inbound, Outbound};

/// The sink and the write in progress.
struct Io<O> {
    sink: O,
    /// Taken from the writer, not yet accepted by the sink.
    in_flight: Option<Outbound>,
    /// Accepted, flush not yet complete.
    flushing: bool,
    write_started: Instant,
    last_write: Instant,
}

impl<O: Sink<Outbound, Error = io::Error> + Unpin> Io<O> {
    fn busy(&self) -> bool {
        self.in_flight.is_some() || self.flushing
    }

    fn start(&mut self, batch: Outbound) {
        self.in_flight = Some(batch);
        self.flushing = true;
        self.write_started = Instant::now();
    }

    /// Drives the write in progress; cancel-safe (all state is in `self`).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.in_flight.is_some() {
            ready!(Pin::new(&mut self.sink).poll_ready(cx))?;
            let batch = self.in_flight.take().expect("checked");
            Pin::new(&mut self.sink).start_send(batch)?;
        }
        ready!(Pin::new(&mut self.sink).poll_flush(cx))?;
        self.flushing = false;
        self.last_write = Instant::now();
        Poll::Ready(Ok(()))
    }
}

pub(super) async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A signal on the session's control channel, if it has one (it has a handler task).
async fn signalled(control: Option<Arc<Control>>) {
    match control {
        Some(control) => control.signalled().await,
        None => std::future::pending().await,
    }
}

/// Runs one session to its end.
pub(crate) async fn run<I, O>(
    broker: &Broker,
    id: u64,
    info: ConnectionInfo,
    accepted: Arc<Accepted>,
    mut inbound: I,
    outbound: O,
) -> CloseReason
where
    I: Stream<Item = io::Result<Inbound>> + Send + Unpin,
    O: Sink<Outbound, Error = io::Error> + Send + Unpin,
{
    let shared = &*broker.shared;
    let config = &shared.config;
    let now = Instant::now();
    let mut conn = Conn::new(broker, id, info, accepted, now);
    let outbox = conn.outbox().clone();
    let mut io = Io {
        sink: outbound,
        in_flight: None,
        flushing: false,
        write_started: now,
        last_write: now,
    };
    let write_timeout = config.outbox.write_timeout;
    // The store sync that held RECEIPTs wait for (`execute.rs`).
    let mut receipts_wait: Option<(u64, crate::store::Synced)> = None;

    while conn.closing.is_none() {
        if receipts_wait.is_none() {
            receipts_wait = conn.receipts_wait();
        }
        if conn.decode_stalled && conn.handlers_have_room() {
            // Frames that arrived while the handler queue was full.
            conn.decode_all().await;
            continue;
        }
        if !io.busy() {
            if conn.writer.is_empty() {
                conn.drain_outbox(MAX_BATCH_BYTES);
            }
            if let Some(batch) = conn.writer.take() {
                io.start(batch);
            }
        }
        let connected = conn.session.is_connected();
        let read_deadline = match connected {
            false => conn.connect_deadline,
            true if conn.heartbeat.receive.is_zero() => None,
            // `None` past the end of time: a client may announce absurd intervals.
            true => conn.last_read.checked_add(conn.heartbeat.timeout),
        };
        // The credential's expiry shares the read deadline's timer: one fewer per session.
        let expires = conn.expires.filter(|_| connected);
        let read_deadline = match (read_deadline, expires) {
            (Some(read), Some(expiry)) => Some(read.min(expiry)),
            (read, expiry) => read.or(expiry),
        };
        let beat_deadline = (connected && !conn.heartbeat.send.is_zero() && !io.busy())
            .then(|| io.last_write.checked_add(conn.heartbeat.send))
            .flatten();
        let write_deadline = io
            .busy()
            .then(|| io.write_started.checked_add(write_timeout))
            .flatten();
        // With the handler queue full, frames wait in the read buffer undecoded, but reading
        // goes on (any byte is liveness, so heart-beats still count) until one frame's worth
        // of input is waiting: the same bound as a frame being received.
        let read_open = conn.writer.len() < config.outbox.max_bytes
            && (conn.handlers_have_room() || conn.read_buf.len() < config.max_frame_size);
        // A publisher waits while the backplane has no room (its client is not idle then:
        // its heart-beats are simply not read yet).
        let mut room = match conn.forwards {
            true => shared.router.backplane_room(),
            false => None,
        };
        let read_open = read_open && room.is_none();
        let read_deadline = read_deadline.filter(|_| room.is_none());
        let control = conn.control();

        tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => {
                conn.fail(ProtocolError::ShuttingDown).await;
            }
            result = poll_fn(|cx| io.poll_write(cx)), if io.busy() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "write failed");
                    conn.cleanup();
                    return conn.ended(CloseReason::TransportClosed);
                }
            }
            () = sleep_opt(write_deadline) => {
                tracing::info!(timeout = ?write_timeout, "write timed out: slow consumer");
                (shared.router.counters()).slow_consumers.fetch_add(1, Relaxed);
                conn.cleanup();
                return conn.ended(CloseReason::SlowConsumer);
            }
            () = signalled(control) => {
                // Before the outbox: a handler's ERROR wins over a slow consumer's, as it
                // did when it came through the outbox. A handler asked for an ERROR, or its queue has room again (the loop reads).
                if let Some(error) = conn.control().and_then(|c| c.take_failure()) {
                    conn.fail(error).await;
                }
            }
            () = outbox.changed() => {
                if let Some(reason) = outbox.take_close_request() {
                    tracing::info!(%reason, "closed by an operator");
                    conn.fail(ProtocolError::ClosedByOperator { reason }).await;
                } else if outbox.is_overflowed() {
                    tracing::info!("outbox overflowed: slow consumer");
                    conn.writer.clear();
                    let outbox_config = &config.outbox;
                    conn.fail(ProtocolError::SlowConsumer {
                        max_frames: outbox_config.max_frames,
                        max_bytes: outbox_config.max_bytes,
                    }).await;
                }
            }
            () = async { room.as_mut().expect("guarded").await }, if room.is_some() => {}
            item = inbound.next(), if read_open => {
                conn.on_inbound(item).await;
                // A transport that is always ready (not tokio I/O) must not starve other
                // sessions on this worker: count each chunk against the task's budget.
                tokio::task::consume_budget().await;
            }
            () = sleep_opt(read_deadline) => {
                let error = if expires.is_some_and(|at| at <= Instant::now()) {
                    ProtocolError::CredentialsExpired
                } else if connected {
                    ProtocolError::HeartbeatTimeout {
                        interval: conn.heartbeat.receive,
                        timeout: conn.heartbeat.timeout,
                    }
                } else {
                    ProtocolError::ConnectTimeout(config.connect_timeout)
                };
                conn.fail(error).await;
            }
            () = sleep_opt(beat_deadline) => conn.writer.push_eol(),
            synced = async { receipts_wait.as_mut().expect("guarded").1.as_mut().await },
                if receipts_wait.is_some() =>
            {
                let (seq, _) = receipts_wait.take().expect("guarded");
                match synced {
                    Ok(()) => conn.release_receipts(seq),
                    Err(e) => conn.fail(ProtocolError::StoreFailed(e)).await,
                }
            }
        }
    }

    let reason = conn.closing.take().expect("the loop ends when closing");
    // A DISCONNECT's RECEIPT (and those before it) go out once their writes are on disk;
    // after an ERROR the held ones are dropped (their frames' effects are not promised).
    if reason == CloseReason::Disconnect
        && let Some((seq, wait)) = conn.receipts_wait()
    {
        tokio::select! {
            biased;
            () = shared.hard_stop.cancelled() => {}
            synced = wait => if synced.is_ok() {
                conn.release_receipts(seq);
            },
        }
    }
    if reason == CloseReason::Disconnect {
        // Messages routed before DISCONNECT still go out, ahead of the close.
        conn.drain_outbox(usize::MAX);
    }
    conn.cleanup();
    conn.read_buf = BytesMut::new();
    // Flush what is queued (a final RECEIPT or ERROR included), each write bounded.
    loop {
        if !io.busy() {
            match conn.writer.take() {
                Some(batch) => io.start(batch),
                None => break,
            }
        }
        let write_deadline = io.write_started.checked_add(write_timeout);
        tokio::select! {
            biased;
            () = shared.hard_stop.cancelled() => break,
            result = poll_fn(|cx| io.poll_write(cx)) => {
                if result.is_err() {
                    break;
                }
            }
            () = sleep_opt(write_deadline) => break,
        }
    }
    conn.ended(reason)
}

/// Inbound: chunks into frames into the state machine.
impl Conn<'_> {
    pub(super) async fn on_inbound(&mut self, item: Option<io::Result<Inbound>>) {
        match item {
            None => {
                tracing::debug!("transport closed");
                self.closing = Some(CloseReason::TransportClosed);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "transport read failed");
                self.closing = Some(CloseReason::TransportClosed);
            }
            Some(Ok(Inbound::Ping)) => self.last_read = Instant::now(),
            Some(Ok(Inbound::TooLarge { size, max })) => {
                tracing::debug!(size, max, "transport refused an oversize message");
                let error = DecodeError::FrameTooLarge { size, max };
                self.fail(ProtocolError::Decode(error)).await;
            }
            Some(Ok(Inbound::LimitExceeded { message, detail })) => {
                tracing::debug!(%message, %detail, "transport limit exceeded");
                self.fail(ProtocolError::TransportLimit { message, detail })
                    .await;
            }
            Some(Ok(Inbound::Data(bytes))) => {
                self.last_read = Instant::now();
                self.writer.traffic().bytes_in(bytes.len());
                self.read_buf.extend_from_slice(&bytes);
                self.decode_all().await;
            }
        }
    }

    /// Decodes and handles every whole frame in the read buffer, unless the handler queue
    /// fills (then the driver resumes it when there is room).
    pub(super) async fn decode_all(&mut self) {
        self.decode_stalled = false;
        while self.closing.is_none() {
            if !self.handlers_have_room() {
                // Resumed by the loop when the handler task catches up; memory stays bounded.
                self.decode_stalled = true;
                break;
            }
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(Item::HeartBeat)) => self.writer.traffic().frame_in(HEARTBEAT),
                Ok(Some(Item::Frame(mut frame))) => {
                    (self.writer.traffic()).frame_in(frame_index(frame.command));
                    tracing::trace!(command = %frame.command, "frame");
                    if let Err(rejected) = self.intercept(&mut frame) {
                        self.session.fail(rejected, None, &mut self.actions);
                        self.execute().await;
                        continue;
                    }
                    let principal = self.me.principal.as_ref();
                    self.session.on_frame(frame, principal, &mut self.actions);
                    self.execute().await;
                }
                Ok(None) => break,
                Err(e) => {
                    self.session.on_decode_error(e, &mut self.actions);
                    self.execute().await;
                }
            }
        }
        if self.read_buf.is_empty() && self.decoder.is_idle() {
            // Idle sessions hold no read buffer.
            self.read_buf = BytesMut::new();
        }
    }

    /// Runs the interceptors on an inbound frame.
    fn intercept(&self, frame: &mut stompbox_codec::Frame) -> Result<(), ProtocolError> {
        for interceptor in self.shared.interceptors.iter() {
            if let Err(r) = interceptor.inbound(frame, &self.me) {
                return Err(ProtocolError::FrameRejected {
                    message: r.message,
                    detail: r.detail,
                });
            }
        }
        Ok(())
    }
}
