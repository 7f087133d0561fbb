//! [`Conn`]: everything of one session but the transport halves and the write in flight: the
//! state machine, the decoder and read buffer, the writer, the outbox, the handler task; and
//! what it does on the way out: drain the outbox into the writer, leave the routing tables.
//! The driver (`driver.rs`) feeds it inbound chunks and timer expiries; `execute.rs` carries
//! out what the state machine decides.

use std::sync::Arc;

use bytes::BytesMut;
use stompbox_codec::{ByteString, Decoder, Version};
use tokio::time::Instant;

use super::writer::Writer;
use super::{AckMode, Action, Heartbeat, Session};
use crate::app::worker::{Call, Worker};
use crate::broker::Shared;
use crate::control::Control;
use crate::error::ProtocolError;
use crate::events::Event;
use crate::outbox::Outbox;
use crate::router::{Outcome, SessionRef, UserKey};
use crate::{Accepted, Broker, CloseReason, ConnectionInfo, SessionInfo};

/// Everything of one session but the transport halves.
pub(super) struct Conn<'a> {
    pub(super) broker: &'a Broker,
    pub(super) shared: &'a Shared,
    /// Id and principal, for handlers, interceptors and events.
    pub(super) me: SessionInfo,
    /// The session as the router knows it: id, user (set when connected), outbox.
    pub(super) route: SessionRef,
    /// The `/app` handler task, spawned on the first `/app` frame.
    worker: Option<Worker>,
    /// `Event::Disconnected` is due (the session was connected) and not sent yet.
    pub(super) owes_disconnected: bool,
    /// Decoding stopped with bytes left because the handler queue is full.
    pub(super) decode_stalled: bool,
    /// The client has published through a backplane: held (not read) while the backplane has
    /// no room ([`crate::Backplane::room`]).
    pub(super) forwards: bool,
    /// Needed only to authenticate; dropped once connected (handshake headers can be large).
    pub(super) info: Option<ConnectionInfo>,
    /// Its entry among the node's connected sessions, from CONNECTED on.
    pub(super) registered: Option<Arc<crate::sessions::Entry>>,
    pub(super) session: Session<'a>,
    pub(super) writer: Writer,
    pub(super) decoder: Decoder,
    pub(super) read_buf: BytesMut,
    pub(super) version: Version,
    pub(super) heartbeat: Heartbeat,
    pub(super) last_read: Instant,
    /// `None` when `connect_timeout` reaches past the end of time.
    pub(super) connect_deadline: Option<Instant>,
    /// When the principal's credential expires (a JWT's `exp`): the session ends then.
    pub(super) expires: Option<Instant>,
    /// The connection's place among the node's connections (and its address's), from accept.
    pub(super) accepted: Arc<Accepted>,
    /// Counts this session against `admission.max_per_user` while it lives.
    pub(super) user_slot: Option<crate::admission::UserSlot<'a>>,
    pub(super) actions: Vec<Action>,
    pub(super) closing: Option<CloseReason>,
    /// The last store write this session's frames made (a persistent SEND, the ACK of a
    /// persistent message) that its next RECEIPT must wait for.
    pub(super) unsynced: Option<u64>,
    /// RECEIPTs held until the store has synced the write each waits for (in order, so each
    /// waits for at least the one before): the session goes on reading meanwhile, so that
    /// one sync covers many of its frames.
    pub(super) held_receipts: std::collections::VecDeque<(u64, stompbox_codec::Frame)>,
    /// A SUBSCRIBE since the last RECEIPT, with a backplane: the next RECEIPT waits until the
    /// backplane has the subscription's interest in effect ([`crate::Backplane::bound`]).
    pub(super) bind_pending: bool,
    cleaned_up: bool,
}

impl<'a> Conn<'a> {
    pub(super) fn new(
        broker: &'a Broker,
        id: u64,
        info: ConnectionInfo,
        accepted: Arc<Accepted>,
        now: Instant,
    ) -> Self {
        let shared = &*broker.shared;
        let config = &shared.config;
        let outbox = Outbox::new(&config.outbox, shared.router.counters().clone());
        Conn {
            broker,
            shared,
            me: SessionInfo::new(id, None),
            route: SessionRef {
                id,
                user: UserKey::Session(id),
                outbox: Arc::new(outbox),
            },
            worker: None,
            owes_disconnected: false,
            decode_stalled: false,
            forwards: false,
            info: Some(info),
            registered: None,
            session: Session::new(ByteString::from(id.to_string()), config)
                .with_rules(shared.router.rules()),
            writer: Writer::new(config.frame_trailing_eol),
            decoder: Decoder::new(config.limits_before_connect()),
            read_buf: BytesMut::new(),
            version: Version::V1_2,
            heartbeat: Heartbeat::default(),
            last_read: now,
            // From the accept: the HTTP request head and upgrade came out of the same time.
            connect_deadline: accepted.accepted_at().checked_add(config.connect_timeout),
            accepted,
            expires: None,
            user_slot: None,
            actions: Vec::new(),
            closing: None,
            unsynced: None,
            held_receipts: std::collections::VecDeque::new(),
            bind_pending: false,
            cleaned_up: false,
        }
    }

    /// The node-unique session id.
    pub(super) fn id(&self) -> u64 {
        self.route.id
    }

    pub(super) fn outbox(&self) -> &Arc<Outbox> {
        &self.route.outbox
    }

    /// The control channel, once the session has a handler task.
    pub(super) fn control(&self) -> Option<Arc<Control>> {
        self.worker.as_ref().map(|w| w.control().clone())
    }

    /// Queues a call for the session's handler task, starting it if needed.
    pub(super) fn call_handler(&mut self, call: Call) {
        let worker = self
            .worker
            .get_or_insert_with(|| Worker::spawn(self.broker, self.me.clone(), self.route.clone()));
        worker.call(call);
    }

    /// False while the session's handler task has `MAX_PENDING_CALLS` calls queued: the
    /// session stops reading (and goes on writing) until it catches up.
    pub(super) fn handlers_have_room(&self) -> bool {
        self.worker.as_ref().is_none_or(Worker::has_room)
    }

    /// Moves up to `max_bytes` of deliveries from the outbox into the writer. Deliveries on
    /// client-ack subscriptions get their `ack` tag and become ACK-able; queue deliveries in
    /// `auto` mode are settled (done with) as they are taken.
    pub(super) fn drain_outbox(&mut self, max_bytes: usize) {
        let router = &self.shared.router;
        let counters = router.counters();
        let (writer, version, session) = (&mut self.writer, self.version, &mut self.session);
        // (subscription, tag) of `auto` queue deliveries; allocates only if there are some.
        let mut written: Vec<(ByteString, u64)> = Vec::new();
        self.route.outbox.take_up_to(max_bytes, |mut d, expected| {
            match session.ack_mode(&d.subscription) {
                Some(AckMode::Client | AckMode::ClientIndividual) => {
                    let tag = *d.tag.get_or_insert_with(|| router.next_tag());
                    d.ack_header = true;
                    session.on_delivered(&d.subscription, tag, d.message.id());
                }
                Some(AckMode::Auto) | None => {
                    if let Some(tag) = d.tag {
                        written.push((d.subscription.clone(), tag));
                    }
                }
            }
            if let Some(routed) = d.message.timed() {
                counters.publish_to_write.observe(routed.elapsed());
            }
            writer.push_delivery(&d, version, expected)
        });
        // Lock order: the outbox lock is released before any queue lock is taken.
        for run in written.chunk_by(|a, b| a.0 == b.0) {
            let subscription = &run[0].0;
            if let Some(target) = self.session.subscription(subscription) {
                let tags: Vec<u64> = run.iter().map(|(_, tag)| *tag).collect();
                let id = self.route.id;
                router.settle(id, subscription, target, &tags, Outcome::Ack);
            }
        }
        if self.route.outbox.take_starved() {
            // A queue kept a delivery this outbox had no room for: there is room now.
            for (_, target) in self.session.subscriptions() {
                router.redispatch(target);
            }
        }
    }

    /// Ends the session with `error`: ERROR, then close.
    pub(super) async fn fail(&mut self, error: ProtocolError) {
        self.session.fail(error, None, &mut self.actions);
        self.execute().await;
    }

    /// Leaves the routing tables and empties the outbox; idempotent.
    pub(super) fn cleanup(&mut self) {
        if std::mem::replace(&mut self.cleaned_up, true) {
            return;
        }
        // Closed first, so queues redelivering this session's unacknowledged messages cannot
        // hand them back to one of its other subscriptions.
        self.route.outbox.close();
        for (id, target) in self.session.subscriptions() {
            (self.shared.router).unsubscribe(&self.route, id, target, false);
        }
    }

    /// Announces the end of a connected session; returns `reason`.
    pub(super) fn ended(&mut self, reason: CloseReason) -> CloseReason {
        if std::mem::take(&mut self.owes_disconnected) {
            let session = self.me.clone();
            let reason = reason.clone();
            self.shared
                .events
                .emit(|| Event::Disconnected { session, reason });
        }
        reason
    }
}

impl Drop for Conn<'_> {
    /// The session future may be dropped mid-way (its task aborted): leave no routes behind.
    fn drop(&mut self) {
        self.cleanup();
        self.ended(CloseReason::TransportClosed);
        // Last, after the final writes: the operators' table, and its traffic into the node's.
        let counters = self.shared.router.counters();
        match self.registered.take() {
            Some(entry) => self.shared.sessions.remove(entry.fixed.id, counters),
            None => self.writer.traffic().depart(counters),
        }
    }
}
