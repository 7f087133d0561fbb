//! The task of one session: one `select!` loop over inbound chunks, the write in progress, the
//! outbox, timers and shutdown. Protocol decisions are the state machine's; this file does I/O.
//!
//! Writes never block reads: a write in flight is polled as one branch (its state lives here,
//! not in a dropped future, so every branch is cancel-safe). While a write is in flight,
//! deliveries wait in the bounded outbox; the next write takes up to one batch from it. Reading
//! pauses when the session's own replies pile up beyond `outbox.max_bytes`, so a peer that sends
//! without reading is slowed, then closed by `write_timeout`.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures::{Sink, Stream, StreamExt};
use stompbox_codec::{ByteString, Command, DecodeError, Decoder, Item, Version};
use tokio::time::{Instant, sleep_until};

mod hooks;

use super::writer::{MAX_BATCH_BYTES, Writer};
use super::{AckMode, Action, Heartbeat, Session};
use crate::app::worker::Worker;
use crate::destination::DestinationKind;
use crate::error::ProtocolError;
use crate::message::Message;
use crate::outbox::Outbox;
use crate::router::{Outcome, QueueError, Subscriber};
use crate::{
    Broker, CloseReason, ConnectRequest, ConnectionInfo, Inbound, Outbound, SessionInfo, Shared,
};

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

/// Everything of one session but the transport halves.
struct Conn<'a> {
    broker: &'a Broker,
    shared: &'a Shared,
    id: u64,
    /// Id and principal, for handlers, interceptors and events.
    me: SessionInfo,
    /// The `/app` handler task, spawned on the first `/app` frame.
    worker: Option<Worker>,
    /// `Event::Disconnected` is due (the session was connected) and not sent yet.
    owes_disconnected: bool,
    /// Decoding stopped with bytes left because the handler queue is full.
    decode_stalled: bool,
    /// Needed only to authenticate; dropped once connected (handshake headers can be large).
    info: Option<ConnectionInfo>,
    session: Session<'a>,
    outbox: Arc<Outbox>,
    writer: Writer,
    decoder: Decoder,
    read_buf: BytesMut,
    version: Version,
    heartbeat: Heartbeat,
    last_read: Instant,
    /// `None` when `connect_timeout` reaches past the end of time.
    connect_deadline: Option<Instant>,
    actions: Vec<Action>,
    closing: Option<CloseReason>,
    cleaned_up: bool,
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs one session to its end.
pub(crate) async fn run<I, O>(
    broker: &Broker,
    id: u64,
    info: ConnectionInfo,
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
    let outbox = Arc::new(Outbox::new(&config.outbox));
    let mut conn = Conn {
        broker,
        shared,
        id,
        me: SessionInfo::new(id, None),
        worker: None,
        owes_disconnected: false,
        decode_stalled: false,
        info: Some(info),
        session: Session::new(ByteString::from(id.to_string()), config)
            .with_rules(&shared.app.rules),
        outbox: outbox.clone(),
        writer: Writer::default(),
        decoder: Decoder::new(config.limits_before_connect()),
        read_buf: BytesMut::new(),
        version: Version::V1_2,
        heartbeat: Heartbeat::default(),
        last_read: now,
        connect_deadline: now.checked_add(config.connect_timeout),
        actions: Vec::new(),
        closing: None,
        cleaned_up: false,
    };
    let mut io = Io {
        sink: outbound,
        in_flight: None,
        flushing: false,
        write_started: now,
        last_write: now,
    };
    let write_timeout = config.outbox.write_timeout;

    while conn.closing.is_none() {
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
        let beat_deadline = (connected && !conn.heartbeat.send.is_zero() && !io.busy())
            .then(|| io.last_write.checked_add(conn.heartbeat.send))
            .flatten();
        let write_deadline = io
            .busy()
            .then(|| io.write_started.checked_add(write_timeout))
            .flatten();
        let read_open = conn.writer.len() < config.outbox.max_bytes && conn.handlers_have_room();

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
                shared.counters.slow_consumers.fetch_add(1, Relaxed);
                conn.cleanup();
                return conn.ended(CloseReason::SlowConsumer);
            }
            () = outbox.changed() => {
                if let Some(error) = outbox.take_failure() {
                    conn.fail(error).await;
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
            item = inbound.next(), if read_open => {
                conn.on_inbound(item).await;
                // A transport that is always ready (not tokio I/O) must not starve other
                // sessions on this worker: count each chunk against the task's budget.
                tokio::task::consume_budget().await;
            }
            () = sleep_opt(read_deadline) => {
                let error = if connected {
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
        }
    }

    let reason = conn.closing.take().expect("the loop ends when closing");
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

impl Conn<'_> {
    /// Moves up to `max_bytes` of deliveries from the outbox into the writer. Deliveries on
    /// client-ack subscriptions get their `ack` tag and become ACK-able; queue deliveries in
    /// `auto` mode are settled (done with) as they are taken.
    fn drain_outbox(&mut self, max_bytes: usize) {
        let shared = self.shared;
        let (writer, version, session) = (&mut self.writer, self.version, &mut self.session);
        // (subscription, tag) of `auto` queue deliveries; allocates only if there are some.
        let mut written: Vec<(ByteString, u64)> = Vec::new();
        self.outbox
            .take_up_to(max_bytes, &shared.counters, |mut d, expected| {
                match session.ack_mode(&d.subscription) {
                    Some(AckMode::Client | AckMode::ClientIndividual) => {
                        let tag = *d.tag.get_or_insert_with(|| shared.router.next_tag());
                        d.ack_header = true;
                        session.on_delivered(&d.subscription, tag, d.message.id());
                    }
                    Some(AckMode::Auto) | None => {
                        if let Some(tag) = d.tag {
                            written.push((d.subscription.clone(), tag));
                        }
                    }
                }
                writer.push_delivery(&d, version, expected)
            });
        // Lock order: the outbox lock is released before any queue lock is taken.
        for run in written.chunk_by(|a, b| a.0 == b.0) {
            let subscription = &run[0].0;
            if let Some(destination) = self.session.subscription(subscription) {
                let tags: Vec<u64> = run.iter().map(|(_, tag)| *tag).collect();
                let (id, counters) = (self.id, &shared.counters);
                shared
                    .router
                    .settle(destination, id, subscription, &tags, Outcome::Ack, counters);
            }
        }
        if self.outbox.take_starved() {
            // A queue kept a delivery this outbox had no room for: there is room now.
            for (_, destination) in self.session.subscriptions() {
                shared.router.redispatch(destination, &shared.counters);
            }
        }
    }

    async fn fail(&mut self, error: ProtocolError) {
        self.session.fail(error, None, &mut self.actions);
        self.execute().await;
    }

    async fn on_inbound(&mut self, item: Option<io::Result<Inbound>>) {
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
            Some(Ok(Inbound::Data(bytes))) => {
                self.last_read = Instant::now();
                self.read_buf.extend_from_slice(&bytes);
                self.decode_all().await;
            }
        }
    }

    async fn decode_all(&mut self) {
        self.decode_stalled = false;
        while self.closing.is_none() {
            if !self.handlers_have_room() {
                // Resumed by the loop when the handler task catches up; memory stays bounded.
                self.decode_stalled = true;
                break;
            }
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(mut frame))) => {
                    tracing::trace!(command = %frame.command, "frame");
                    if let Err(rejected) = self.intercept(&mut frame) {
                        self.session.fail(rejected, None, &mut self.actions);
                        self.execute().await;
                        continue;
                    }
                    self.session.on_frame(frame, &mut self.actions);
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

    /// Carries out the state machine's actions in order (authentication may add more). An
    /// effect that fails (a full queue) ends the session: the actions after it are dropped, and
    /// the receipt among them (that of the frame being applied) goes on the ERROR.
    async fn execute(&mut self) {
        let mut queue: VecDeque<Action> = std::mem::take(&mut self.actions).into();
        while let Some(action) = queue.pop_front() {
            let event = self.observe(&action);
            match self.apply(action).await {
                // Events describe effects that happened: a refused subscription emits none.
                Ok(()) => self.emit(event),
                Err(error) => {
                    let receipt = queue.drain(..).find_map(|a| match a {
                        Action::Reply(f) if f.command == Command::Receipt => {
                            f.headers.get_shared("receipt-id").cloned()
                        }
                        _ => None,
                    });
                    self.session.fail(error, receipt, &mut self.actions);
                }
            }
            queue.extend(self.actions.drain(..));
        }
        // Nothing is kept between frames: an idle session holds no action buffer.
        self.actions = Vec::new();
    }

    async fn apply(&mut self, action: Action) -> Result<(), ProtocolError> {
        let Some(action) = self.apply_app(action) else {
            return Ok(());
        };
        let shared = self.shared;
        match action {
            Action::Reply(frame) => {
                // Everything routed to this session before the reply goes out before it.
                self.drain_outbox(usize::MAX);
                self.writer.push_frame(&frame, self.version);
            }
            Action::Authenticate(headers) => {
                let Some(connection) = self.info.as_ref() else {
                    unreachable!("authentication happens once, before the info is dropped")
                };
                let request = ConnectRequest {
                    login: headers.get("login"),
                    passcode: headers.get("passcode"),
                    host: headers.get("host"),
                    headers: &headers,
                    connection,
                };
                let verdict = shared.authenticator.authenticate(request);
                tokio::select! {
                    result = verdict => self.session.on_authenticated(result, &mut self.actions),
                    () = sleep_opt(self.connect_deadline) => {
                        let error = ProtocolError::ConnectTimeout(shared.config.connect_timeout);
                        self.session.fail(error, None, &mut self.actions);
                    }
                    () = shared.shutdown.cancelled() => {
                        self.session.fail(ProtocolError::ShuttingDown, None, &mut self.actions);
                    }
                }
            }
            Action::Open {
                version,
                heartbeat,
                principal,
            } => {
                self.version = version;
                self.heartbeat = heartbeat;
                self.decoder.set_version(version);
                self.decoder.set_limits(shared.config.limits());
                self.last_read = Instant::now();
                self.info = None;
                let span = tracing::Span::current();
                span.record("version", version.as_str());
                if let Some(p) = &principal {
                    span.record("principal", p.name.as_str());
                }
                tracing::debug!(
                    heartbeat_send_ms = heartbeat.send.as_millis() as u64,
                    heartbeat_receive_ms = heartbeat.receive.as_millis() as u64,
                    "connected"
                );
            }
            Action::Subscribe { id, destination } => {
                tracing::debug!(id = %id, destination = %destination, "subscribe");
                let options = self.session.subscribe_options(&id);
                if let (DestinationKind::Queue, Some(backplane)) =
                    (destination.kind(), shared.router.remote_queues())
                {
                    // The queue lives in the backplane (RabbitMQ): it delivers via the sink.
                    backplane.queue_subscribe(crate::backplane::QueueConsumer {
                        queue: destination.name().to_owned(),
                        session: self.id,
                        subscription: id.to_string(),
                        prefetch: options.prefetch,
                        sink: crate::backplane::QueueSink {
                            broker: self.broker.clone(),
                            destination: destination.as_shared().clone(),
                            subscription: id,
                            outbox: self.outbox.clone(),
                        },
                    });
                    return Ok(());
                }
                let subscriber = Subscriber {
                    session: self.id,
                    subscription: id,
                    outbox: self.outbox.clone(),
                };
                let counters = &shared.counters;
                let subscribed =
                    (shared.router).subscribe(&destination, subscriber, options, counters);
                subscribed.map_err(|e| queue_error(e, &destination, shared))?;
            }
            Action::Unsubscribe { id, destination } => {
                tracing::debug!(id = %id, destination = %destination, "unsubscribe");
                let counters = &shared.counters;
                shared
                    .router
                    .unsubscribe(&destination, self.id, &id, counters);
                if destination.kind() == DestinationKind::Queue {
                    // Its unacknowledged messages went back to the queue: none may be written.
                    self.outbox.remove_subscription(&id, counters);
                }
            }
            Action::Settle {
                destination,
                subscription,
                tags,
                outcome,
            } => {
                let counters = &shared.counters;
                shared.router.settle(
                    &destination,
                    self.id,
                    &subscription,
                    &tags,
                    outcome,
                    counters,
                );
            }
            Action::Publish {
                destination,
                headers,
                body,
            } => {
                let counters = &shared.counters;
                counters.messages_received.fetch_add(1, Relaxed);
                let id = shared.next_message_id.fetch_add(1, Relaxed);
                let message = Message::new(id, destination.as_shared().clone(), headers, body);
                let queued = shared
                    .router
                    .publish(&destination, Arc::new(message), counters)
                    .map_err(|e| queue_error(e, &destination, shared))?;
                counters
                    .messages_delivered
                    .fetch_add(queued as u64, Relaxed);
            }
            Action::Close(reason) => {
                tracing::debug!(?reason, "closing");
                self.closing = Some(reason);
            }
            Action::Handle { .. } => unreachable!("taken by apply_app"),
        }
        Ok(())
    }

    /// Leaves the routing table and empties the outbox; idempotent.
    fn cleanup(&mut self) {
        if std::mem::replace(&mut self.cleaned_up, true) {
            return;
        }
        let counters = &self.shared.counters;
        // Closed first, so queues redelivering this session's unacknowledged messages cannot
        // hand them back to one of its other subscriptions.
        self.outbox.close(counters);
        for (id, destination) in self.session.subscriptions() {
            (self.shared.router).unsubscribe(destination, self.id, id, counters);
        }
        self.leave_user_destinations();
    }
}

fn queue_error(
    error: QueueError,
    destination: &crate::Destination,
    shared: &Shared,
) -> ProtocolError {
    match error {
        QueueError::Full => ProtocolError::QueueFull {
            destination: destination.to_string(),
        },
        QueueError::TooManyQueues => ProtocolError::TooManyQueues {
            max: shared.config.queues.max_queues,
        },
        QueueError::Relay(refused) => ProtocolError::RelayUnavailable {
            destination: destination.to_string(),
            reason: refused.reason,
        },
    }
}

impl Drop for Conn<'_> {
    /// The session future may be dropped mid-way (its task aborted): leave no routes behind.
    fn drop(&mut self) {
        self.cleanup();
        self.ended(CloseReason::TransportClosed);
    }
}
